import { buildMessage, ValidateBy, type ValidationOptions } from 'class-validator';
import { JsonNumber } from '../../services/exact-json';

/**
 * A JSON object: not an array, and not a number kept exactly (exact-json.ts), which class-validator's IsObject would
 * take for one since it is held in an object of its own.
 */
export function IsJsonObject(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isJsonObject',
      validator: {
        validate: (value: unknown) =>
          typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof JsonNumber),
        defaultMessage: buildMessage((each) => `${each}$property must be an object`, options),
      },
    },
    options,
  );
}
