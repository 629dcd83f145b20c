import { Matches, ValidationOptions } from 'class-validator';

/** Text that PostgreSQL can store: its text types refuse the NUL character, which JSON and URLs can carry. */
export function NoNulCharacter(options: ValidationOptions = {}): PropertyDecorator {
  // eslint-disable-next-line no-control-regex -- the NUL character is what it looks for
  return Matches(/^[^\u0000]*$/, { message: '$property must not contain a NUL character', ...options });
}
