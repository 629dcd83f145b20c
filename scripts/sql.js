// `npm run sql -- "<statement>"`: runs SQL on the service's database and prints the rows, for a machine without psql.
// The database is the one `npm start` uses: where DB_* point (the environment, then .env), else 127.0.0.1:5432 as the
// user postgres, which is also where a development start runs its embedded PostgreSQL.
'use strict';
const { existsSync } = require('node:fs');
const { Client } = require('pg');

if (existsSync('.env')) process.loadEnvFile('.env');
const sql = process.argv.slice(2).join(' ').trim();
if (!sql) {
  console.error('usage: npm run sql -- "SELECT * FROM reservations"');
  process.exit(2);
}
const env = process.env;
const client = new Client({
  host: env.DB_HOST || '127.0.0.1',
  port: Number(env.DB_PORT || 5432),
  user: env.DB_USERNAME || 'postgres',
  password: env.DB_PASSWORD ?? '',
  database: env.DB_NAME || 'batch_service',
});

async function main() {
  await client.connect();
  try {
    const results = [].concat(await client.query(sql));
    for (const result of results)
      if (result.fields && result.fields.length > 0) console.table(result.rows);
      else console.log(result.rowCount === null ? result.command : `${result.command} ${result.rowCount}`);
  } finally {
    await client.end();
  }
}

main().catch((error) => {
  console.error(error.message);
  // the embedded PostgreSQL of a development start runs while the service does
  if (error.code === 'ECONNREFUSED') console.error('No PostgreSQL answers there: is the service running (npm start)?');
  process.exitCode = 1;
});
