# Batch Service image: one image for every role (BATCH_ROLE=all|api|worker), on Node 24 (LTS).
#   docker build -t batch-service .
#   docker run --rm -p 3000:3000 -e DB_HOST=... -e BATCH_SERVICE_RMQ_URL=... -e REDIS_URL=... batch-service
#   (against `docker compose up -d postgres rabbitmq redis`, see the README)

# ---- build: all dependencies, compile TypeScript to dist/ ----
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# the stand-in for an optional native package of the benchmark's BullMQ (package.json's overrides): npm ci needs it
COPY bench/msgpackr-extract-absent ./bench/msgpackr-extract-absent
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies and the compiled output only ----
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY scripts/node-flags ./scripts/
# the functions and views the service applies at start (src/migrations/definitions), read where they are written
COPY src/migrations/definitions ./src/migrations/definitions
# The service reads .env from its working directory if present; configure it through the environment instead.
USER node
EXPOSE 3000
# Ready when /health says so (database and broker up); the image has no curl, Node's fetch does the request.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# With the Node flags of `npm start` (scripts/node-flags); exec, so that node gets the signals.
CMD ["sh", "-c", "exec env MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2} node $(cat scripts/node-flags) dist/src/main.js"]
