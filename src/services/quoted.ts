/**
 * A caller's text as a message quotes it: in double quotes, its first `most` characters (then `…`), every character
 * that does not print escaped (\u001f, \ufffd for bytes that were not UTF-8): a file's first line, a record's value,
 * whatever they hold, never reach a terminal as binary.
 */
export function quoted(text: string, most = 100): string {
  const cut = text.length > most ? `${text.slice(0, most)}…` : text;
  return JSON.stringify(cut).replace(
    /[\u007f-\u009f\u2028\u2029\ufffd]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
