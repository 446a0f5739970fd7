/**
 * The titles of the `test(…)` and `it(…)` calls in a test file's source, as the runner shows them: a title
 * continued over lines with a backslash (in a template literal) is read as one line.
 */
export function testTitles(source: string): string[] {
  const titles: string[] = [];
  for (const match of source.matchAll(/\b(?:test|it)\(\s*(['"`])((?:\\[\s\S]|(?!\1)[\s\S])*)\1/g))
    titles.push(match[2]!.replaceAll('\\\n', ''));
  return titles;
}
