# Portcullis: one image for both planes; the command picks the plane (see docker-compose.yml and the README).
# The build stage compiles the TypeScript; the image holds only the output and the production dependencies.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# `dev` keeps its embedded database and generated secrets (admin token, secret key) here: mount a volume on it.
ENV PORTCULLIS_DATA_DIR=/data
RUN mkdir /data && chown node:node /data
VOLUME /data
USER node
# MCP endpoint (agents) and GraphQL API (admin); dev's gRPC config stream serves only its own in-process node.
EXPOSE 8080 4000
ENTRYPOINT ["node", "dist/cli/src/main.js"]
CMD ["dev", "--host", "0.0.0.0", "--graphql-host", "0.0.0.0"]
