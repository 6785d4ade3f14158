# The worker image: the same entry point as `npm run worker`, configured by environment variables.
FROM node:24-bookworm-slim
WORKDIR /app
# psql and pg_restore: the disaster-recovery drill restores dumps with PostgreSQL's own tools.
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client-15 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY common ./common
COPY config ./config
COPY activities ./activities
COPY workflows ./workflows
COPY workers ./workers
# The alert bridge and `npm run schedules` (scripts/alert-bridge.ts, scripts/schedules.ts) run from this image too.
COPY client ./client
# Only these two scripts: the test bed (scripts/testbed) never ships in the image.
COPY scripts/alert-bridge.ts scripts/schedules.ts ./scripts/
# The workflows bundled once, here, instead of by webpack at every start: quicker, and its compiler
# needs a writable home, which the Deployment's read-only root file system does not have.
RUN node --import tsx workers/bundle-workflows.ts workflow-bundle.js
ENV WORKFLOW_BUNDLE=/app/workflow-bundle.js
USER node
EXPOSE 9464
CMD ["node", "--import", "tsx", "workers/main.ts"]
