import { INestApplicationContext, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from '../../src/app.module';
import { AuthenticatedClient, ClientService } from '../../src/services/client.service';
import { createTestDatabase, TestDatabase } from './test-database';

/**
 * The service's modules on a fresh database, without transports and without the worker loops (role `api`),
 * so that a test drives the domain services and the chunk step directly.
 */
export interface TestApp {
  db: TestDatabase;
  app: INestApplicationContext;
  get<T>(type: Type<T>): T;
  client(name: string, targets?: string[]): Promise<AuthenticatedClient>;
  close(): Promise<void>;
}

export async function createTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const db = await createTestDatabase(env);
  const app = await NestFactory.createApplicationContext(AppModule.forRoot(db.config), { logger: ['error'] });
  const clients = app.get(ClientService);
  return {
    db,
    app,
    get: (type) => app.get(type),
    client: async (name, targets = ['*']) => clients.authenticate((await clients.create({ name, targets })).apiKey),
    close: async () => {
      await app.close();
      await db.close();
    },
  };
}
