# Batch Service image: one image for every role (BATCH_ROLE=all|api|worker).
#   docker build -t batch-service .
#   docker run --rm -e NODE_ENV=production -e API_KEY_ENCRYPTION_SECRET=... -p 3000:3000 batch-service

# ---- build: all dependencies, compile TypeScript to dist/ ----
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies and the compiled output only ----
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
# The service reads .env from its working directory if present; configure it through the environment instead.
USER node
EXPOSE 3000
CMD ["node", "--max-semi-space-size=32", "--heap-growing-percent=100", "dist/src/main.js"]
