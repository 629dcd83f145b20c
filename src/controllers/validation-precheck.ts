import {
  getMetadataStorage,
  MetadataStorage,
  ValidationArguments,
  ValidationTypes,
  ValidatorConstraintInterface,
} from 'class-validator';
import type { ValidationMetadata } from 'class-validator/types/metadata/ValidationMetadata';
import type { MetadataStorage as TransformMetadata } from 'class-transformer/types/MetadataStorage';
import { TransformationType } from 'class-transformer';

// class-transformer's registry of @Type, @Transform, @Expose and @Exclude (not exported from its index).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const transformMetadata = (require('class-transformer/cjs/storage') as { defaultMetadataStorage: TransformMetadata })
  .defaultMetadataStorage;

/** Whether a value (or a DTO object holding it) passes. */
type Check = (value: unknown) => boolean;
type FieldCheck = (object: Record<string, unknown>) => boolean;

const NEVER: Check = () => false;
const checks = new WeakMap<object, Check>();

/**
 * Whether the DTO's rules accept a request body as it was sent, so that the validation pipe can hand it on as it is.
 * The rules are the DTO's own class-validator constraints, read from its metadata once and called directly, field by
 * field: no copy built by class-transformer, no metadata looked up per object, no error objects. For a bulk create
 * that is most of the validation's cost (each of up to 1,000 operations has about ten constraints).
 *
 * It only ever says "accepted": a body it does not accept (an unknown field, a failed constraint, anything it does
 * not know how to check, such as a class-transformer conversion or an asynchronous constraint) goes the whole way
 * through ValidationPipe, which decides and says why. So it cannot accept what the pipe refuses: both run the same
 * constraint functions on the same values (test/unit/validation-precheck.test.ts compares them on arbitrary bodies).
 */
export function acceptedAsSent(type: object, value: unknown): boolean {
  let check = checks.get(type);
  if (!check) checks.set(type, (check = compile(type)));
  return check(value);
}

function compile(type: object): Check {
  const target = type as new () => object;
  const storage = getMetadataStorage();
  // As ValidationExecutor reads them for a validation without groups.
  const rules = storage.getTargetValidationMetadatas(target, '', false, false);
  const converted =
    transformMetadata.getExposedMetadatas(target).length + transformMetadata.getExcludedMetadatas(target).length;
  if (rules.length === 0 || converted > 0) return NEVER;
  const fields: [string, FieldCheck][] = [];
  for (const [property, propertyRules] of Object.entries(storage.groupByPropertyName(rules))) {
    const field = compileField(storage, target, property, propertyRules);
    if (!field) return NEVER;
    fields.push([property, field]);
  }
  const known = new Set(fields.map(([property]) => property));
  return (value) => {
    if (!isPlainObject(value)) return false;
    for (const key of Object.keys(value)) if (!known.has(key)) return false; // whitelist: unknown fields are refused
    for (const [, field] of fields) if (!field(value)) return false;
    return true;
  };
}

/**
 * One property's rules, in ValidationExecutor's order; undefined when one of them is of a kind not handled here, or
 * class-transformer would convert the value (@Transform, or @Type other than a nested DTO's).
 */
function compileField(
  storage: MetadataStorage,
  target: new () => object,
  property: string,
  rules: ValidationMetadata[],
): FieldCheck | undefined {
  if (transformMetadata.findTransformMetadatas(target, property, TransformationType.PLAIN_TO_CLASS).length > 0)
    return undefined;
  const typeMetadata = transformMetadata.findTypeMetadata(target, property);
  const conditions: ValidationMetadata[] = [];
  const constraints: { rule: ValidationMetadata; constraint: ValidatorConstraintInterface }[] = [];
  let nested: Check | undefined;
  for (const rule of rules) {
    if (rule.type === ValidationTypes.CONDITIONAL_VALIDATION) conditions.push(rule);
    else if (rule.type === ValidationTypes.CUSTOM_VALIDATION || rule.type === ValidationTypes.IS_DEFINED) {
      if (rule.validateIf) return undefined;
      for (const { async, instance } of storage.getTargetValidatorConstraints(rule.constraintCls)) {
        if (async) return undefined;
        constraints.push({ rule, constraint: instance as ValidatorConstraintInterface });
      }
    } else if (rule.type === ValidationTypes.NESTED_VALIDATION) {
      if (!typeMetadata || typeMetadata.options?.discriminator || nested) return undefined;
      const nestedType = typeMetadata.typeFunction();
      nested = (value) => acceptedAsSent(nestedType, value);
    } else if (rule.type !== ValidationTypes.WHITELIST) return undefined;
  }
  if (typeMetadata && !nested) return undefined;
  return (object) => {
    const value = object[property];
    for (const condition of conditions) if (!condition.constraints[0](object, value)) return true;
    for (const { rule, constraint } of constraints) {
      const args: ValidationArguments = {
        targetName: target.name,
        property,
        object,
        value,
        constraints: rule.constraints,
      };
      const valid =
        rule.each && Array.isArray(value)
          ? value.every((item) => constraint.validate(item, args) === true)
          : constraint.validate(value, args) === true; // a promise (an asynchronous constraint) is left to the pipe
      if (!valid) return false;
    }
    if (!nested || value === undefined) return true;
    return Array.isArray(value) ? value.every(nested) : nested(value);
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype;
}
