import 'reflect-metadata';
import { ValidationPipe } from '@nestjs/common';
import { OperationsCreateDto, OperationCreateDto } from '../src/controllers/dto/operation.dto';

async function main() {
  const pipe = new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true });
  const ops = Array.from({ length: 1000 }, (_, i) => ({ target: 'bench', type: 'insert', values: { qty: i % 100, note: `note ${i}`, at: '2026-11-21T10:00:00Z', price: 9.5 } }));
  for (let round = 0; round < 3; round++) {
    let t = process.hrtime.bigint();
    for (let k = 0; k < 20; k++) await pipe.transform({ operations: ops }, { type: 'body', metatype: OperationsCreateDto });
    console.log('bulk 1000 per call, ms', Number(process.hrtime.bigint() - t) / 1e6 / 20);
    t = process.hrtime.bigint();
    for (let k = 0; k < 5000; k++) await pipe.transform(ops[k % 1000], { type: 'body', metatype: OperationCreateDto });
    console.log('single, µs', Number(process.hrtime.bigint() - t) / 1e3 / 5000);
  }
}
main();
