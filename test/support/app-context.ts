import { INestApplicationContext, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from '../../src/app.module';
import { AuthenticatedClient, ClientService } from '../../src/services/access/client.service';
import { AppConfig } from '../../src/config/app-config';
import { createTestDatabase, TestDatabase, testConfig } from './test-database';

/**
 * The service's modules on a fresh database, without transports and without the worker loops (role `api`),
 * so that a test drives the domain services and the chunk step directly.
 */
export interface TestApp {
  db: TestDatabase;
  app: INestApplicationContext;
  get<T>(type: Type<T>): T;
  client(name: string, targets?: string[]): Promise<AuthenticatedClient>;
  /** The modules once more on this database, configured with `env` as well (AppConfig is read-only); close it after. */
  withConfig(env: Record<string, string>): Promise<TestApp>;
  close(): Promise<void>;
}

export async function createTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const db = await createTestDatabase(env);
  return appOn(db, db.config, env, () => db.close());
}

async function appOn(
  db: TestDatabase,
  config: AppConfig,
  env: Record<string, string>,
  release: () => Promise<void>,
): Promise<TestApp> {
  const app = await NestFactory.createApplicationContext(AppModule.forRoot(config), { logger: ['error'] });
  const clients = app.get(ClientService);
  return {
    db,
    app,
    get: (type) => app.get(type),
    client: async (name, targets = ['*']) => clients.authenticate((await clients.create({ name, targets })).apiKey),
    withConfig: (more) => {
      const merged = { ...env, ...more };
      return appOn(db, testConfig({ ...merged, DB_NAME: db.name }), merged, async () => undefined);
    },
    close: async () => {
      await app.close();
      await release();
    },
  };
}
