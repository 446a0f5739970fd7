# Portcullis: one image for both planes; the command picks the plane (see docker-compose.yml).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
RUN npm install --no-save --no-audit --no-fund typescript@5.9.3 && npm run build && npm uninstall --no-save typescript
USER node
ENTRYPOINT ["node", "dist/cli/src/main.js"]
CMD ["dev", "--host", "0.0.0.0", "--graphql-host", "0.0.0.0"]
