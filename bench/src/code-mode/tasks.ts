import type { ToolRef } from './catalog.ts';

/**
 * The task suite of the code-mode token benchmark. A task is what a user asks, the tools a model has to
 * find for it (each with the words it would search for), and the script a model in code mode sends: it
 * calls tools as `await tools.<server>.<tool>(args)` and returns the answer. Every tool is a recorded,
 * real one (bench/fixtures/catalogs); the recorded-catalog upstream answers each call with
 * `{ id, n }` (or a value shaped by the tool's outputSchema), see fake-results.mjs, so the answer of a
 * task is computable. The classic trajectory makes the same calls, one a turn (the script run in the
 * bench process with each call a classic `tools/call` through the gateway); its answer is the expected one.
 */
export interface Task {
  readonly id: string;
  readonly prompt: string;
  /** Each tool the script calls, with the words a model would give `search_tools` to find it. */
  readonly find: Readonly<Record<ToolRef, string>>;
  /** The body of an async function of `tools`; `return` the answer. */
  readonly code: string;
}

const ACCOUNT = 'AC00000000000000000000000000000000';

export const TASKS: readonly Task[] = [
  {
    id: 'web-search-compare',
    prompt: 'Search "MCP gateway" on Brave and on Tavily; report which engine scored higher and both ids.',
    find: { 'brave/brave_web_search': 'brave web search', 'tavily/tavily_search': 'tavily search' },
    code: `const b = await tools.brave.brave_web_search({ query: "MCP gateway" });
const t = await tools.tavily.tavily_search({ query: "MCP gateway" });
return { winner: b.n >= t.n ? "brave" : "tavily", ids: [b.id, t.id] };`,
  },
  {
    id: 'issue-to-slack-and-memory',
    prompt:
      'List the open issues of portcullis/gateway on GitHub, post their summary id to Slack #C01 and remember it.',
    find: {
      'github/list_issues': 'list github issues',
      'slack/slack_post_message': 'slack post message',
      'memory/create_entities': 'create memory entities',
    },
    code: `const issues = await tools.github.list_issues({ owner: "portcullis", repo: "gateway", state: "open" });
const post = await tools.slack.slack_post_message({ channel_id: "C01", text: "open issues: " + issues.id });
const mem = await tools.memory.create_entities({
  entities: [{ name: "issues-" + issues.id, entityType: "report", observations: ["posted " + post.id] }],
});
return { issues: issues.id, post: post.id, remembered: mem.entities.length };`,
  },
  {
    id: 'geocode-directions-elevation',
    prompt: 'Geocode "Ferry Building, San Francisco", get directions from Oakland to it and the elevation there.',
    find: {
      'gmaps/maps_geocode': 'geocode address',
      'gmaps/maps_directions': 'maps directions',
      'gmaps/maps_elevation': 'elevation',
    },
    code: `const place = await tools.gmaps.maps_geocode({ address: "Ferry Building, San Francisco" });
const route = await tools.gmaps.maps_directions({ origin: "Oakland", destination: place.id, mode: "transit" });
const elevation = await tools.gmaps.maps_elevation({ locations: [{ latitude: place.n / 10, longitude: -122.39 }] });
return { place: place.id, route: route.id, metres: elevation.n };`,
  },
  {
    id: 'pr-review-summary',
    prompt: 'For PR 42 of portcullis/gateway: fetch it, its files and reviews, and tell me the total of their counts.',
    find: {
      'github/get_pull_request': 'get pull request',
      'github/get_pull_request_files': 'pull request files',
      'github/get_pull_request_reviews': 'pull request reviews',
    },
    code: `const where = { owner: "portcullis", repo: "gateway", pull_number: 42 };
const [pr, files, reviews] = await Promise.all([
  tools.github.get_pull_request(where),
  tools.github.get_pull_request_files(where),
  tools.github.get_pull_request_reviews(where),
]);
return { pr: pr.id, total: pr.n + files.n + reviews.n };`,
  },
  {
    id: 'docs-then-notes',
    prompt: 'Find the Context7 id of "zod", query its docs about unions, and save the answer in a Notion page.',
    find: {
      'context7/resolve-library-id': 'resolve library id docs',
      'context7/query-docs': 'query library docs',
      'notion/API-post-page': 'notion create page',
    },
    code: `const lib = await tools.context7["resolve-library-id"]({ libraryName: "zod", query: "unions" });
const docs = await tools.context7["query-docs"]({ libraryId: lib.id, query: "discriminated unions" });
const page = await tools.notion["API-post-page"]({
  parent: { page_id: "p-docs" },
  properties: { title: [{ text: { content: "zod unions " + docs.id } }] },
});
return { library: lib.id, docs: docs.id, page: page.id };`,
  },
  {
    id: 'sum-and-echo',
    prompt: 'Add 19 and 23 with the test server, echo the sum back, and log it as a thought.',
    find: {
      'everything/get-sum': 'sum two numbers',
      'everything/echo': 'echo message',
      'thinking/sequentialthinking': 'sequential thinking thought',
    },
    code: `const sum = await tools.everything["get-sum"]({ a: 19, b: 23 });
const echoed = await tools.everything.echo({ message: "sum " + sum.n });
const thought = await tools.thinking.sequentialthinking({
  thought: "The sum is " + sum.n, thoughtNumber: 1, totalThoughts: 1, nextThoughtNeeded: false,
});
return { sum: sum.n, echo: echoed.id, thought: thought.thoughtNumber };`,
  },
  {
    id: 'files-read-and-store',
    prompt: 'List /srv/notes, read todo.md there and store its content as a memory observation.',
    find: {
      'filesystem/list_directory': 'list directory files',
      'filesystem/read_text_file': 'read text file',
      'memory/add_observations': 'add memory observations',
    },
    code: `const listing = await tools.filesystem.list_directory({ path: "/srv/notes" });
const file = await tools.filesystem.read_text_file({ path: "/srv/notes/todo.md" });
const added = await tools.memory.add_observations({
  observations: [{ entityName: "todo", contents: [file.content, listing.content] }],
});
return { content: file.content, added: added.results.length };`,
  },
  {
    id: 'hubspot-contacts-to-slack',
    prompt: 'Search HubSpot contacts named Ada, read the first batch, and post the count to Slack #C02.',
    find: {
      'hubspot/hubspot-search-objects': 'hubspot search objects contacts',
      'hubspot/hubspot-batch-read-objects': 'hubspot batch read objects',
      'slack/slack_post_message': 'slack post message',
    },
    code: `const found = await tools.hubspot["hubspot-search-objects"]({ objectType: "contacts", query: "Ada" });
const read = await tools.hubspot["hubspot-batch-read-objects"]({ objectType: "contacts", inputs: [{ id: found.id }] });
const post = await tools.slack.slack_post_message({ channel_id: "C02", text: "contacts " + read.n });
return { contacts: read.n, post: post.id };`,
  },
  {
    id: 'twilio-sms-after-balance',
    prompt: 'Check the Twilio balance; if it is above 500 send an SMS to +15550100 saying so, else list messages.',
    find: {
      'twilio/TwilioApiV2010--FetchBalance': 'twilio balance',
      'twilio/TwilioApiV2010--CreateMessage': 'twilio create message sms',
      'twilio/TwilioApiV2010--ListMessage': 'twilio list messages',
    },
    code: `const balance = await tools.twilio["TwilioApiV2010--FetchBalance"]({ AccountSid: "${ACCOUNT}" });
if (balance.n > 500) {
  const sms = await tools.twilio["TwilioApiV2010--CreateMessage"]({
    AccountSid: "${ACCOUNT}", To: "+15550100", From: "+15550199", Body: "balance " + balance.n,
  });
  return { balance: balance.n, sent: sms.id };
}
const list = await tools.twilio["TwilioApiV2010--ListMessage"]({ AccountSid: "${ACCOUNT}", PageSize: 5 });
return { balance: balance.n, listed: list.id };`,
  },
  {
    id: 'browser-screenshot-flow',
    prompt: 'Open https://example.com in the browser, take a snapshot, click "More information", and screenshot.',
    find: {
      'playwright/browser_navigate': 'browser navigate url',
      'playwright/browser_snapshot': 'browser page snapshot',
      'playwright/browser_click': 'browser click',
      'playwright/browser_take_screenshot': 'browser screenshot',
    },
    code: `await tools.playwright.browser_navigate({ url: "https://example.com" });
const snap = await tools.playwright.browser_snapshot({});
const click = await tools.playwright.browser_click({ target: "More information", element: snap.id });
const shot = await tools.playwright.browser_take_screenshot({ scale: "css", type: "png" });
return { snapshot: snap.id, clicked: click.id, screenshot: shot.id };`,
  },
  {
    id: 'news-fanout',
    prompt: 'Search news about "quickjs" on Brave, the web on Tavily, and videos on Brave; return the best score.',
    find: {
      'brave/brave_news_search': 'brave news search',
      'tavily/tavily_search': 'tavily search',
      'brave/brave_video_search': 'brave video search',
    },
    code: `const results = await Promise.all([
  tools.brave.brave_news_search({ query: "quickjs" }),
  tools.tavily.tavily_search({ query: "quickjs" }),
  tools.brave.brave_video_search({ query: "quickjs" }),
]);
const best = results.reduce((a, b) => (b.n > a.n ? b : a));
return { best: best.id, score: best.n };`,
  },
  {
    id: 'fork-branch-file',
    prompt: 'Fork acme/widgets, create a branch "fix-docs" in the fork, and update README.md on it.',
    find: {
      'github/fork_repository': 'fork repository',
      'github/create_branch': 'create branch',
      'github/create_or_update_file': 'create or update file github',
    },
    code: `const fork = await tools.github.fork_repository({ owner: "acme", repo: "widgets" });
const branch = await tools.github.create_branch({ owner: fork.id, repo: "widgets", branch: "fix-docs" });
const file = await tools.github.create_or_update_file({
  owner: fork.id, repo: "widgets", path: "README.md", content: "# Widgets", message: "docs", branch: "fix-docs",
});
return { fork: fork.id, branch: branch.id, commit: file.id };`,
  },
  {
    id: 'slack-thread-digest',
    prompt: 'Read #C03 history, get the replies of its latest thread, react with :eyes: and reply with a count.',
    find: {
      'slack/slack_get_channel_history': 'slack channel history',
      'slack/slack_get_thread_replies': 'slack thread replies',
      'slack/slack_add_reaction': 'slack add reaction',
      'slack/slack_reply_to_thread': 'slack reply thread',
    },
    code: `const history = await tools.slack.slack_get_channel_history({ channel_id: "C03", limit: 10 });
const replies = await tools.slack.slack_get_thread_replies({ channel_id: "C03", thread_ts: history.id });
await tools.slack.slack_add_reaction({ channel_id: "C03", timestamp: history.id, reaction: "eyes" });
const reply = await tools.slack.slack_reply_to_thread({
  channel_id: "C03", thread_ts: history.id, text: replies.n + " replies",
});
return { thread: history.id, replies: replies.n, reply: reply.id };`,
  },
  {
    id: 'notion-search-append',
    prompt: 'Search Notion for "roadmap", read the first page, and append a paragraph block to it.',
    find: {
      'notion/API-post-search': 'notion search',
      'notion/API-retrieve-a-page': 'notion retrieve page',
      'notion/API-patch-block-children': 'notion append block children',
    },
    code: `const found = await tools.notion["API-post-search"]({ query: "roadmap" });
const page = await tools.notion["API-retrieve-a-page"]({ page_id: found.id });
const appended = await tools.notion["API-patch-block-children"]({
  block_id: page.id,
  children: [{ type: "paragraph", paragraph: { rich_text: [{ text: { content: "reviewed" } }] } }],
});
return { page: page.id, appended: appended.id };`,
  },
  {
    id: 'places-details-distance',
    prompt: "Find coffee places near Union Square, get the first one's details and its distance from Market St.",
    find: {
      'gmaps/maps_search_places': 'search places',
      'gmaps/maps_place_details': 'place details',
      'gmaps/maps_distance_matrix': 'distance matrix',
    },
    code: `const places = await tools.gmaps.maps_search_places({ query: "coffee near Union Square" });
const details = await tools.gmaps.maps_place_details({ place_id: places.id });
const distance = await tools.gmaps.maps_distance_matrix({ origins: ["Market St"], destinations: [details.id] });
return { place: details.id, distance: distance.n };`,
  },
  {
    id: 'hubspot-property-check',
    prompt: 'List HubSpot deal properties, fetch "amount", and create a "renewal_date" property if it is missing.',
    find: {
      'hubspot/hubspot-list-properties': 'hubspot list properties',
      'hubspot/hubspot-get-property': 'hubspot get property',
      'hubspot/hubspot-create-property': 'hubspot create property',
    },
    code: `const props = await tools.hubspot["hubspot-list-properties"]({ objectType: "deals" });
const amount = await tools.hubspot["hubspot-get-property"]({ objectType: "deals", propertyName: "amount" });
const created = await tools.hubspot["hubspot-create-property"]({
  objectType: "deals", name: "renewal_date", label: "Renewal date", groupName: "dealinformation",
  type: "date", fieldType: "date",
});
return { properties: props.n, amount: amount.id, created: created.id };`,
  },
  {
    id: 'memory-graph-relations',
    prompt: 'Create entities "alice" and "acme", relate alice works_at acme, and search the graph for acme.',
    find: {
      'memory/create_entities': 'create memory entities',
      'memory/create_relations': 'create relations',
      'memory/search_nodes': 'search memory nodes',
    },
    code: `await tools.memory.create_entities({ entities: [
  { name: "alice", entityType: "person", observations: [] },
  { name: "acme", entityType: "company", observations: [] },
] });
const rel = await tools.memory.create_relations({
  relations: [{ from: "alice", to: "acme", relationType: "works_at" }],
});
const hits = await tools.memory.search_nodes({ query: "acme" });
return { relations: rel.relations.length, found: hits.entities.map((e) => e.name) };`,
  },
  {
    id: 'twilio-call-and-recordings',
    prompt: 'Place a Twilio call from +15550199 to +15550100, then list its recordings and events.',
    find: {
      'twilio/TwilioApiV2010--CreateCall': 'twilio create call',
      'twilio/TwilioApiV2010--ListCallRecording': 'twilio list call recordings',
      'twilio/TwilioApiV2010--ListCallEvent': 'twilio list call events',
    },
    code: `const call = await tools.twilio["TwilioApiV2010--CreateCall"]({
  AccountSid: "${ACCOUNT}", To: "+15550100", From: "+15550199", Url: "https://example.com/twiml",
});
const [recordings, events] = await Promise.all([
  tools.twilio["TwilioApiV2010--ListCallRecording"]({ AccountSid: "${ACCOUNT}", CallSid: call.id }),
  tools.twilio["TwilioApiV2010--ListCallEvent"]({ AccountSid: "${ACCOUNT}", CallSid: call.id }),
]);
return { call: call.id, recordings: recordings.n, events: events.n };`,
  },
  {
    id: 'code-search-to-issue',
    prompt: 'Search GitHub code for "TODO security", open an issue about it in acme/widgets, and comment on it.',
    find: {
      'github/search_code': 'search code github',
      'github/create_issue': 'create issue',
      'github/add_issue_comment': 'issue comment',
    },
    code: `const hits = await tools.github.search_code({ q: "TODO security repo:acme/widgets" });
const issue = await tools.github.create_issue({ owner: "acme", repo: "widgets", title: "Security TODOs: " + hits.n });
const comment = await tools.github.add_issue_comment({
  owner: "acme", repo: "widgets", issue_number: issue.n, body: "Found in " + hits.id,
});
return { hits: hits.n, issue: issue.n, comment: comment.id };`,
  },
  {
    id: 'extract-and-summarize',
    prompt: 'Extract https://example.com/post with Tavily, summarize it with Brave, and note it in memory.',
    find: {
      'tavily/tavily_extract': 'extract web page content',
      'brave/brave_summarizer': 'brave summarizer',
      'memory/add_observations': 'add memory observations',
    },
    code: `const page = await tools.tavily.tavily_extract({ urls: ["https://example.com/post"] });
const summary = await tools.brave.brave_summarizer({ key: page.id });
const noted = await tools.memory.add_observations({
  observations: [{ entityName: "reading", contents: ["summary " + summary.id] }],
});
return { page: page.id, summary: summary.id, entity: noted.results[0].entityName };`,
  },
  {
    id: 'dir-tree-search-info',
    prompt: 'Show the tree of /srv/app, search it for "*.env" files and get the info of the first match.',
    find: {
      'filesystem/directory_tree': 'directory tree',
      'filesystem/search_files': 'search files pattern',
      'filesystem/get_file_info': 'file info',
    },
    code: `const tree = await tools.filesystem.directory_tree({ path: "/srv/app" });
const found = await tools.filesystem.search_files({ path: "/srv/app", pattern: "*.env" });
const info = await tools.filesystem.get_file_info({ path: found.content });
return { tree: tree.content.length, first: found.content, info: info.content };`,
  },
  {
    id: 'notion-db-query',
    prompt: 'Retrieve the Notion database "db-tasks", query its data source, and comment on the first result.',
    find: {
      'notion/API-retrieve-a-database': 'notion retrieve database',
      'notion/API-query-data-source': 'notion query data source',
      'notion/API-create-a-comment': 'notion create comment',
    },
    code: `const db = await tools.notion["API-retrieve-a-database"]({ database_id: "db-tasks" });
const rows = await tools.notion["API-query-data-source"]({ data_source_id: db.id });
const comment = await tools.notion["API-create-a-comment"]({
  parent: { page_id: rows.id }, rich_text: [{ text: { content: "checked" } }],
});
return { database: db.id, rows: rows.n, comment: comment.id };`,
  },
  {
    id: 'structured-weather',
    prompt: 'Get the structured weather of Chicago and Oslo from the test server and return the warmer city.',
    find: { 'everything/get-structured-content': 'structured content weather' },
    code: `const [chicago, oslo] = await Promise.all([
  tools.everything["get-structured-content"]({ location: "Chicago" }),
  tools.everything["get-structured-content"]({ location: "Oslo" }),
]);
return chicago.temperature >= oslo.temperature ? "Chicago" : "Oslo";`,
  },
  {
    id: 'pr-merge-gate',
    prompt: 'For PR 7 of acme/widgets: check its status and comments; merge it when the status score is even.',
    find: {
      'github/get_pull_request_status': 'pull request status checks',
      'github/get_pull_request_comments': 'pull request comments',
      'github/merge_pull_request': 'merge pull request',
    },
    code: `const where = { owner: "acme", repo: "widgets", pull_number: 7 };
const status = await tools.github.get_pull_request_status(where);
const comments = await tools.github.get_pull_request_comments(where);
if (status.n % 2 === 0) {
  const merged = await tools.github.merge_pull_request({ ...where, merge_method: "squash" });
  return { merged: true, sha: merged.id, comments: comments.n };
}
return { merged: false, comments: comments.n };`,
  },
  {
    id: 'crawl-map-research',
    prompt: 'Map https://docs.example.com with Tavily, crawl it, and start a research task on what was found.',
    find: {
      'tavily/tavily_map': 'tavily map site',
      'tavily/tavily_crawl': 'tavily crawl',
      'tavily/tavily_research': 'tavily research',
    },
    code: `const map = await tools.tavily.tavily_map({ url: "https://docs.example.com" });
const crawl = await tools.tavily.tavily_crawl({ url: "https://docs.example.com", limit: map.n % 50 + 1 });
const research = await tools.tavily.tavily_research({ input: "Summarize " + crawl.id });
return { pages: map.n, crawl: crawl.id, research: research.id };`,
  },
  {
    id: 'form-fill-submit',
    prompt: 'Open the signup page, fill the form with name and email, press Enter, and read the console.',
    find: {
      'playwright/browser_navigate': 'browser navigate url',
      'playwright/browser_fill_form': 'fill form fields',
      'playwright/browser_press_key': 'press key',
      'playwright/browser_console_messages': 'console messages',
    },
    code: `await tools.playwright.browser_navigate({ url: "https://example.com/signup" });
await tools.playwright.browser_fill_form({ fields: [
  { name: "Name", type: "textbox", target: "name", value: "Ada" },
  { name: "Email", type: "textbox", target: "email", value: "ada@example.com" },
] });
const key = await tools.playwright.browser_press_key({ key: "Enter" });
const logs = await tools.playwright.browser_console_messages({ level: "error" });
return { pressed: key.id, errors: logs.n };`,
  },
  {
    id: 'twilio-numbers',
    prompt: 'List available local US numbers on Twilio, buy the first one, and list the incoming numbers.',
    find: {
      'twilio/TwilioApiV2010--ListAvailablePhoneNumberLocal': 'twilio available local phone numbers',
      'twilio/TwilioApiV2010--CreateIncomingPhoneNumber': 'twilio create incoming phone number',
      'twilio/TwilioApiV2010--ListIncomingPhoneNumber': 'twilio list incoming phone numbers',
    },
    code: `const available = await tools.twilio["TwilioApiV2010--ListAvailablePhoneNumberLocal"]({
  AccountSid: "${ACCOUNT}", CountryCode: "US", AreaCode: 415,
});
const bought = await tools.twilio["TwilioApiV2010--CreateIncomingPhoneNumber"]({
  AccountSid: "${ACCOUNT}", PhoneNumber: "+1415" + String(available.n).padStart(7, "0"),
});
const owned = await tools.twilio["TwilioApiV2010--ListIncomingPhoneNumber"]({ AccountSid: "${ACCOUNT}" });
return { bought: bought.id, owned: owned.n };`,
  },
  {
    id: 'users-cross-check',
    prompt: 'List Slack users, Notion users and HubSpot owner details; return how many directories answered.',
    find: {
      'slack/slack_get_users': 'slack users',
      'notion/API-get-users': 'notion list users',
      'hubspot/hubspot-get-user-details': 'hubspot user details',
    },
    code: `const answers = await Promise.all([
  tools.slack.slack_get_users({ limit: 100 }),
  tools.notion["API-get-users"]({}),
  tools.hubspot["hubspot-get-user-details"]({}),
]);
return { directories: answers.length, ids: answers.map((a) => a.id) };`,
  },
  {
    id: 'write-move-list',
    prompt: 'Write /srv/out/report.txt, move it to /srv/archive/report.txt, and list /srv/archive with sizes.',
    find: {
      'filesystem/write_file': 'write file',
      'filesystem/move_file': 'move file',
      'filesystem/list_directory_with_sizes': 'list directory sizes',
    },
    code: `await tools.filesystem.write_file({ path: "/srv/out/report.txt", content: "ok" });
const moved = await tools.filesystem.move_file({
  source: "/srv/out/report.txt", destination: "/srv/archive/report.txt",
});
const listing = await tools.filesystem.list_directory_with_sizes({ path: "/srv/archive", sortBy: "size" });
return { moved: moved.content, listing: listing.content };`,
  },
  {
    id: 'reverse-geocode-local',
    prompt: 'Reverse geocode 40.7128,-74.0060, search Brave local results for pizza there, and geocode the best.',
    find: {
      'gmaps/maps_reverse_geocode': 'reverse geocode coordinates',
      'brave/brave_local_search': 'brave local search',
      'gmaps/maps_geocode': 'geocode address',
    },
    code: `const where = await tools.gmaps.maps_reverse_geocode({ latitude: 40.7128, longitude: -74.006 });
const local = await tools.brave.brave_local_search({ query: "pizza near " + where.id });
const best = await tools.gmaps.maps_geocode({ address: local.id });
return { area: where.id, best: best.id };`,
  },
  {
    id: 'workflow-audit',
    prompt: 'List HubSpot workflows, fetch the first one, and record it as a memory entity.',
    find: {
      'hubspot/hubspot-list-workflows': 'hubspot list workflows',
      'hubspot/hubspot-get-workflow': 'hubspot get workflow',
      'memory/create_entities': 'create memory entities',
    },
    code: `const flows = await tools.hubspot["hubspot-list-workflows"]({ limit: 20 });
const flow = await tools.hubspot["hubspot-get-workflow"]({ flowId: flows.id });
const mem = await tools.memory.create_entities({
  entities: [{ name: "workflow-" + flow.id, entityType: "workflow", observations: ["steps " + flow.n] }],
});
return { workflow: flow.id, entity: mem.entities[0].name };`,
  },
  {
    id: 'commit-digest',
    prompt: 'List recent commits of acme/widgets, list its open PRs, and post a digest to Slack #C04.',
    find: {
      'github/list_commits': 'list commits',
      'github/list_pull_requests': 'list pull requests',
      'slack/slack_post_message': 'slack post message',
    },
    code: `const commits = await tools.github.list_commits({ owner: "acme", repo: "widgets", perPage: 20 });
const prs = await tools.github.list_pull_requests({ owner: "acme", repo: "widgets", state: "open" });
const post = await tools.slack.slack_post_message({
  channel_id: "C04", text: commits.n + " commits, " + prs.n + " open PRs",
});
return { commits: commits.n, prs: prs.n, post: post.id };`,
  },
  {
    id: 'page-markdown-roundtrip',
    prompt: 'Read Notion page p-42 as markdown, update it with a footer, and move it under p-archive.',
    find: {
      'notion/API-retrieve-page-markdown': 'notion page markdown',
      'notion/API-update-page-markdown': 'notion update page markdown',
      'notion/API-move-page': 'notion move page',
    },
    code: `const md = await tools.notion["API-retrieve-page-markdown"]({ page_id: "p-42" });
const updated = await tools.notion["API-update-page-markdown"]({
  page_id: "p-42", type: "insert_content", insert_content: { content: "\\n-- " + md.id },
});
const moved = await tools.notion["API-move-page"]({
  page_id: "p-42", parent: { type: "page_id", page_id: "p-archive" },
});
return { markdown: md.id, updated: updated.id, moved: moved.id };`,
  },
  {
    id: 'image-search-to-page',
    prompt: 'Find images of "lighthouse" on Brave, read its LLM context, and put both ids in a Notion page.',
    find: {
      'brave/brave_image_search': 'brave image search',
      'brave/brave_llm_context': 'brave llm context',
      'notion/API-post-page': 'notion create page',
    },
    code: `const images = await tools.brave.brave_image_search({ query: "lighthouse" });
const context = await tools.brave.brave_llm_context({ query: "lighthouse" });
const page = await tools.notion["API-post-page"]({
  parent: { page_id: "p-media" },
  properties: { title: [{ text: { content: images.id + " " + context.id } }] },
});
return { images: images.id, context: context.id, page: page.id };`,
  },
  {
    id: 'queue-members',
    prompt: 'List Twilio queues, fetch the first, and list its members.',
    find: {
      'twilio/TwilioApiV2010--ListQueue': 'twilio list queues',
      'twilio/TwilioApiV2010--FetchQueue': 'twilio fetch queue',
      'twilio/TwilioApiV2010--ListMember': 'twilio list queue members',
    },
    code: `const queues = await tools.twilio["TwilioApiV2010--ListQueue"]({ AccountSid: "${ACCOUNT}" });
const queue = await tools.twilio["TwilioApiV2010--FetchQueue"]({ AccountSid: "${ACCOUNT}", Sid: queues.id });
const members = await tools.twilio["TwilioApiV2010--ListMember"]({ AccountSid: "${ACCOUNT}", QueueSid: queue.id });
return { queue: queue.id, members: members.n };`,
  },
  {
    id: 'repo-search-contents',
    prompt: 'Search GitHub repositories for "mcp gateway", read package.json of the top one, and search its users.',
    find: {
      'github/search_repositories': 'search repositories',
      'github/get_file_contents': 'get file contents',
      'github/search_users': 'search users',
    },
    code: `const repos = await tools.github.search_repositories({ query: "mcp gateway", perPage: 5 });
const pkg = await tools.github.get_file_contents({ owner: repos.id, repo: "gateway", path: "package.json" });
const users = await tools.github.search_users({ q: repos.id });
return { top: repos.id, pkg: pkg.id, users: users.n };`,
  },
  {
    id: 'graph-cleanup',
    prompt: 'Open memory nodes "old-1" and "old-2", delete their observations, then delete the entities.',
    find: {
      'memory/open_nodes': 'open memory nodes',
      'memory/delete_observations': 'delete observations',
      'memory/delete_entities': 'delete entities',
    },
    code: `const nodes = await tools.memory.open_nodes({ names: ["old-1", "old-2"] });
await tools.memory.delete_observations({
  deletions: nodes.entities.map((e) => ({ entityName: e.name, observations: e.observations })),
});
const gone = await tools.memory.delete_entities({ entityNames: ["old-1", "old-2"] });
return { opened: nodes.entities.length, deleted: gone.success };`,
  },
  {
    id: 'research-and-think',
    prompt: 'Research "sandboxing" with Tavily, think about it in two steps, and echo the conclusion.',
    find: {
      'tavily/tavily_research': 'tavily research',
      'thinking/sequentialthinking': 'sequential thinking thought',
      'everything/echo': 'echo message',
    },
    code: `const research = await tools.tavily.tavily_research({ input: "sandboxing" });
let step;
for (let i = 1; i <= 2; i++) {
  step = await tools.thinking.sequentialthinking({
    thought: "step " + i + " on " + research.id, thoughtNumber: i, totalThoughts: 2, nextThoughtNeeded: i < 2,
  });
}
const echoed = await tools.everything.echo({ message: "done after " + step.thoughtNumber });
return { research: research.id, echo: echoed.id };`,
  },
  {
    id: 'tabs-evaluate',
    prompt: 'List browser tabs, evaluate document.title, and resize the window to 1280x800.',
    find: {
      'playwright/browser_tabs': 'browser tabs',
      'playwright/browser_evaluate': 'browser evaluate javascript',
      'playwright/browser_resize': 'browser resize window',
    },
    code: `const tabs = await tools.playwright.browser_tabs({ action: "list" });
const title = await tools.playwright.browser_evaluate({ function: "() => document.title" });
await tools.playwright.browser_resize({ width: 1280, height: 800 });
return { tabs: tabs.n, title: title.id };`,
  },
  {
    id: 'crm-associate',
    prompt: 'Create a HubSpot contact and a company, then associate the contact with the company.',
    find: {
      'hubspot/hubspot-batch-create-objects': 'hubspot batch create objects',
      'hubspot/hubspot-get-association-definitions': 'hubspot association definitions',
      'hubspot/hubspot-batch-create-associations': 'hubspot create associations',
    },
    code: `const contact = await tools.hubspot["hubspot-batch-create-objects"]({
  objectType: "contacts", inputs: [{ properties: { email: "ada@example.com" } }],
});
const company = await tools.hubspot["hubspot-batch-create-objects"]({
  objectType: "companies", inputs: [{ properties: { name: "Acme" } }],
});
const defs = await tools.hubspot["hubspot-get-association-definitions"]({
  fromObjectType: "contacts", toObjectType: "companies",
});
const link = await tools.hubspot["hubspot-batch-create-associations"]({
  fromObjectType: "contacts", toObjectType: "companies",
  types: [{ associationCategory: "HUBSPOT_DEFINED", associationTypeId: defs.n }],
  inputs: [{ from: { id: contact.id }, to: { id: company.id } }],
});
return { contact: contact.id, company: company.id, link: link.id };`,
  },
  {
    id: 'messages-media',
    prompt: 'List Twilio messages, fetch the first one, and list its media.',
    find: {
      'twilio/TwilioApiV2010--ListMessage': 'twilio list messages',
      'twilio/TwilioApiV2010--FetchMessage': 'twilio fetch message',
      'twilio/TwilioApiV2010--ListMedia': 'twilio message media',
    },
    code: `const list = await tools.twilio["TwilioApiV2010--ListMessage"]({ AccountSid: "${ACCOUNT}", PageSize: 20 });
const message = await tools.twilio["TwilioApiV2010--FetchMessage"]({ AccountSid: "${ACCOUNT}", Sid: list.id });
const media = await tools.twilio["TwilioApiV2010--ListMedia"]({ AccountSid: "${ACCOUNT}", MessageSid: message.id });
return { message: message.id, media: media.n };`,
  },
  {
    id: 'multi-file-read',
    prompt: 'Read /srv/a.txt and /srv/b.txt together, write their concatenation to /srv/c.txt, then edit a line.',
    find: {
      'filesystem/read_multiple_files': 'read multiple files',
      'filesystem/write_file': 'write file',
      'filesystem/edit_file': 'edit file',
    },
    code: `const both = await tools.filesystem.read_multiple_files({ paths: ["/srv/a.txt", "/srv/b.txt"] });
await tools.filesystem.write_file({ path: "/srv/c.txt", content: both.content });
const edit = await tools.filesystem.edit_file({
  path: "/srv/c.txt", edits: [{ oldText: "a", newText: "A" }], dryRun: true,
});
return { combined: both.content, diff: edit.content };`,
  },
  {
    id: 'issue-triage',
    prompt: 'Search GitHub issues labelled "bug" in acme/widgets, fetch the first, and label it "triaged".',
    find: {
      'github/search_issues': 'search issues',
      'github/get_issue': 'get issue',
      'github/update_issue': 'update issue labels',
    },
    code: `const found = await tools.github.search_issues({ q: "repo:acme/widgets label:bug is:open" });
const issue = await tools.github.get_issue({ owner: "acme", repo: "widgets", issue_number: found.n });
const updated = await tools.github.update_issue({
  owner: "acme", repo: "widgets", issue_number: found.n, labels: ["bug", "triaged"],
});
return { issue: issue.id, updated: updated.id };`,
  },
  {
    id: 'k8s-restart-notify',
    prompt: "Get the pods of namespace web, read the first pod's logs, restart deployment web, and tell Slack #C05.",
    find: {
      'kubernetes/kubectl_get': 'kubectl get resources',
      'kubernetes/kubectl_logs': 'kubectl pod logs',
      'kubernetes/kubectl_rollout': 'kubectl rollout restart deployment',
      'slack/slack_post_message': 'slack post message',
    },
    code: `const pods = await tools.kubernetes.kubectl_get({ resourceType: "pods", namespace: "web" });
const logs = await tools.kubernetes.kubectl_logs({ resourceType: "pod", name: pods.id, namespace: "web", tail: 50 });
const rollout = await tools.kubernetes.kubectl_rollout({
  subCommand: "restart", resourceType: "deployment", name: "web", namespace: "web",
});
const post = await tools.slack.slack_post_message({ channel_id: "C05", text: "restarted web after " + logs.id });
return { pod: pods.id, rollout: rollout.id, post: post.id };`,
  },
  {
    id: 'ci-flaky-to-issue',
    prompt: 'Check the latest CircleCI pipeline of gh/acme/widgets on main, find flaky tests, and file a GitHub issue.',
    find: {
      'circleci/get_latest_pipeline_status': 'circleci latest pipeline status',
      'circleci/find_flaky_tests': 'find flaky tests',
      'github/create_issue': 'create issue',
    },
    code: `const project = { projectSlug: "gh/acme/widgets" };
const status = await tools.circleci.get_latest_pipeline_status({ ...project, branch: "main" });
const flaky = await tools.circleci.find_flaky_tests(project);
const issue = await tools.github.create_issue({
  owner: "acme", repo: "widgets", title: flaky.n + " flaky tests (pipeline " + status.id + ")",
});
return { pipeline: status.id, flaky: flaky.n, issue: issue.n };`,
  },
  {
    id: 'sentry-triage',
    prompt: 'Search unresolved Sentry issues of org acme, resolve the first one, and post it to Slack #C06.',
    find: {
      'sentry/search_issues': 'sentry search issues',
      'sentry/update_issue': 'sentry update issue status',
      'slack/slack_post_message': 'slack post message',
    },
    code: `const found = await tools.sentry.search_issues({
  organizationSlug: "acme", naturalLanguageQuery: "unresolved errors from the last week",
});
const updated = await tools.sentry.update_issue({ organizationSlug: "acme", issueId: found.id, status: "resolved" });
const post = await tools.slack.slack_post_message({ channel_id: "C06", text: "resolved " + updated.id });
return { issue: found.id, resolved: updated.id, post: post.id };`,
  },
  {
    id: 'pinecone-rag-memory',
    prompt: 'Search the Pinecone index "docs" for "rate limits", rerank the hits, and keep the best in memory.',
    find: {
      'pinecone/search-records': 'pinecone search records',
      'pinecone/rerank-documents': 'rerank documents',
      'memory/add_observations': 'add memory observations',
    },
    code: `const hits = await tools.pinecone["search-records"]({
  name: "docs", namespace: "default", query: { topK: 5, inputs: { text: "rate limits" } },
});
const ranked = await tools.pinecone["rerank-documents"]({
  model: "bge-reranker-v2-m3", query: "rate limits", documents: [hits.id], options: { topN: 1 },
});
const kept = await tools.memory.add_observations({
  observations: [{ entityName: "rate-limits", contents: ["best " + ranked.id] }],
});
return { hits: hits.id, best: ranked.id, kept: kept.results.length };`,
  },
  {
    id: 'messaging-service-setup',
    prompt: 'Create a Twilio Messaging service "alerts", fetch it back, and list all messaging services.',
    find: {
      'twilio-messaging/TwilioMessagingV1--CreateService': 'twilio create messaging service',
      'twilio-messaging/TwilioMessagingV1--FetchService': 'twilio fetch messaging service',
      'twilio-messaging/TwilioMessagingV1--ListService': 'twilio list messaging services',
    },
    code: `const m = tools["twilio-messaging"];
const created = await m["TwilioMessagingV1--CreateService"]({ FriendlyName: "alerts" });
const fetched = await m["TwilioMessagingV1--FetchService"]({ Sid: created.id });
const all = await m["TwilioMessagingV1--ListService"]({ PageSize: 50 });
return { service: fetched.id, services: all.n };`,
  },
  {
    id: 'firecrawl-to-notion',
    prompt: 'Search the web with Firecrawl for "MCP gateway", scrape example.com, and save the outcome in Notion.',
    find: {
      'firecrawl/firecrawl_search': 'firecrawl search web',
      'firecrawl/firecrawl_scrape': 'firecrawl scrape page',
      'notion/API-post-page': 'notion create page',
    },
    code: `const search = await tools.firecrawl.firecrawl_search({ query: "MCP gateway", limit: 3 });
const page = await tools.firecrawl.firecrawl_scrape({ url: "https://example.com", formats: ["markdown"] });
const saved = await tools.notion["API-post-page"]({
  parent: { page_id: "p-research" },
  properties: { title: [{ text: { content: "search ok: " + search.success + ", scrape ok: " + page.success } }] },
});
return { searched: search.success, scraped: page.success, page: saved.id };`,
  },
];
