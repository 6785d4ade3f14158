# The worker image: the same entry point as `npm run worker`, configured by environment variables.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY common ./common
COPY config ./config
COPY activities ./activities
COPY workflows ./workflows
COPY workers ./workers
USER node
EXPOSE 9464
CMD ["node", "--import", "tsx", "workers/main.ts"]
