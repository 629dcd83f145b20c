import { plainToInstance } from 'class-transformer';
import { validate as validateObject, type ValidationError } from 'class-validator';
import type { ItemProcessor, StepRun } from '../job-definition';

/**
 * Processors in a row, each given what the one before returned (Spring Batch's CompositeItemProcessor); an item one of
 * them filters out (null) goes no further.
 */
export function compose<A, B>(a: ItemProcessor<A, B>): ItemProcessor<A, B>;
export function compose<A, B, C>(a: ItemProcessor<A, B>, b: ItemProcessor<B, C>): ItemProcessor<A, C>;
export function compose<A, B, C, D>(
  a: ItemProcessor<A, B>,
  b: ItemProcessor<B, C>,
  c: ItemProcessor<C, D>,
): ItemProcessor<A, D>;
export function compose<A, B, C, D, E>(
  a: ItemProcessor<A, B>,
  b: ItemProcessor<B, C>,
  c: ItemProcessor<C, D>,
  d: ItemProcessor<D, E>,
): ItemProcessor<A, E>;
export function compose(...processors: ItemProcessor<unknown, unknown>[]): ItemProcessor<unknown, unknown> {
  return async (item: unknown, step: StepRun) => {
    let current: unknown = item;
    for (const processor of processors) {
      current = await processor(current, step);
      if (current === null) return null;
    }
    return current;
  };
}

/** An item refused by validate(): its messages, one per constraint, are the reject's. */
export class ItemInvalid extends Error {
  readonly code = 'VALIDATION_FAILED';

  constructor(readonly messages: string[]) {
    super(messages.join('; '));
  }
}

/**
 * Validates each item against a class-validator DTO (Spring Batch's BeanValidatingItemProcessor): the item as an
 * instance of `dto` (class-transformer's plainToInstance, so its @Type and @Transform apply) when it is valid; else
 * ItemInvalid, a process skip whose reason lists the messages. `filter: true` filters the invalid items out instead.
 */
export function validate<T extends object>(
  dto: new () => T,
  options: { filter?: boolean; whitelist?: boolean } = {},
): ItemProcessor<object, T> {
  return async (item) => {
    const instance = plainToInstance(dto, item);
    const errors = await validateObject(instance, {
      whitelist: options.whitelist ?? false,
      forbidUnknownValues: true,
    });
    if (errors.length === 0) return instance;
    if (options.filter) return null;
    throw new ItemInvalid(messagesOf(errors));
  };
}

function messagesOf(errors: ValidationError[], path = ''): string[] {
  return errors.flatMap((error) => {
    const property = path ? `${path}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) =>
      path ? message.replace(error.property, property) : message,
    );
    return [...own, ...messagesOf(error.children ?? [], property)];
  });
}
