import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One measured figure: its value, and where there is one, its baseline from the same run and the target ratio. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  /** The target: a minimum ratio to the baseline, or with `max`, a maximum value (or ratio). */
  target?: number;
  max?: boolean;
  note?: string;
  /** A figure measured more than once: each run's ratio (or value, without a baseline); every one is to meet the target. */
  runs?: number[];
  /** Each run's value and baseline, in the order they ran: which of the two moved where the ratio swings. */
  measured?: { value: number; baseline?: number }[];
}

export function ratio(f: Figure): number | null {
  return f.baseline ? f.value / f.baseline.value : null;
}

export function meets(f: Figure): boolean | null {
  if (f.target === undefined) return null;
  const measured = f.runs ?? [ratio(f) ?? f.value];
  return measured.every((m) => (f.max ? m <= f.target! : m >= f.target!));
}

export function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
}

/**
 * The figures of repeated runs of a section as one figure each (by name): its median value against its baseline's
 * median, and each run's ratio (or value, without a baseline) as its runs.
 */
export function merged(repeats: Figure[][]): Figure[] {
  const byName = new Map<string, Figure[]>();
  for (const figure of repeats.flat()) byName.set(figure.name, [...(byName.get(figure.name) ?? []), figure]);
  return [...byName.values()].map((runs) => {
    if (runs.length === 1) return runs[0];
    const [first] = runs;
    const baseline = first.baseline && { name: first.baseline.name, value: median(runs.map((f) => f.baseline!.value)) };
    return {
      ...first,
      value: median(runs.map((f) => f.value)),
      baseline,
      runs: runs.map((f) => ratio(f) ?? f.value),
      measured: runs.map((f) => ({ value: f.value, baseline: f.baseline?.value })),
    };
  });
}

/** A figure's runs as `min / median / max` (one run: its value alone). */
function spread(f: Figure): string {
  if (!f.runs) return '1 run';
  const sorted = [...f.runs].sort((a, b) => a - b);
  const unit = ratio(f) === null ? '' : '×';
  return `${[sorted[0], sorted[Math.floor(sorted.length / 2)], sorted.at(-1)!].map((v) => fmt(v) + unit).join(' / ')} (${sorted.length} runs)`;
}

const fmt = (n: number) => (Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));

/** The figures as rows of cells, a header first, and their notes (each figure's note, then each run's value and baseline). */
function cells(figures: Figure[]): { rows: string[][]; notes: string[] } {
  const rows = [['figure', 'value', 'baseline', 'ratio', 'min / median / max', 'target', 'ok']];
  for (const f of figures) {
    const r = ratio(f);
    const ok = meets(f);
    rows.push([
      f.name,
      `${fmt(f.value)} ${f.unit}`,
      f.baseline ? `${fmt(f.baseline.value)} (${f.baseline.name})` : '',
      r === null ? '' : `${r.toFixed(2)}×`,
      spread(f),
      f.target === undefined ? '' : `${f.max ? '≤' : '≥'} ${f.target}${r === null ? ` ${f.unit}` : '×'}`,
      ok === null ? '' : ok ? 'yes' : 'NO',
    ]);
  }
  const notes = figures.filter((f) => f.note).map((f) => `- ${f.name}: ${f.note}`);
  const eachRun = (f: Figure) =>
    f.measured!.map((run) => fmt(run.value) + (run.baseline === undefined ? '' : ` vs ${fmt(run.baseline)}`));
  notes.push(
    ...figures.filter((f) => f.measured && f.baseline).map((f) => `- ${f.name}, run by run: ${eachRun(f).join('; ')}`),
  );
  return { rows, notes };
}

/** The figures as the terminal shows them: aligned columns, then the notes. */
export function table(figures: Figure[]): string {
  const { rows, notes } = cells(figures);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  return [
    ...rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c])).join('  ')),
    ...(notes.length ? ['', ...notes] : []),
  ].join('\n');
}

/** The figures as a Markdown page: when and with what settings they were measured, the table, then the notes. */
export function markdown(figures: Figure[], measuredAt: string, settings: Record<string, unknown>): string {
  const { rows, notes } = cells(figures);
  const line = (row: string[]) => `| ${row.map((cell) => cell.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [
    '# Benchmark results',
    '',
    `Measured ${measuredAt} by \`npm run bench\` (see [the bench's README](../README.md) for what each figure is), with`,
    `\`${JSON.stringify(settings)}\`.`,
    '',
    line(rows[0]),
    line(rows[0].map(() => '---')),
    ...rows.slice(1).map(line),
    '',
    ...notes,
  ].join('\n');
}

/** A horizontal bar per figure with a target: measured against target, 1.0 = exactly on target. */
export function svg(figures: Figure[]): string {
  const shown = figures.filter((f) => f.target !== undefined);
  const width = 960;
  const bar = 22;
  const left = 380; // the figures' names
  const scale = (width - left - 200) / 2; // 2× target, then room for the value
  const lines = shown.map((f, i) => {
    const measured = ratio(f) ?? f.value;
    const score = Math.min(2, f.max ? f.target! / Math.max(measured, 1e-9) : measured / f.target!);
    const y = 30 + i * (bar + 8);
    const color = score >= 1 ? '#2e7d32' : '#c62828';
    const label = `${fmt(measured)}${ratio(f) === null ? ` ${f.unit}` : '×'} (target ${f.max ? '≤' : '≥'} ${f.target})`;
    return (
      `<text x="${left - 8}" y="${y + 15}" text-anchor="end" font-size="12">${escape(f.name)}</text>` +
      `<rect x="${left}" y="${y}" width="${Math.max(1, score * scale)}" height="${bar}" fill="${color}"/>` +
      `<text x="${left + Math.max(1, score * scale) + 4}" y="${y + 15}" font-size="11">${escape(label)}</text>`
    );
  });
  const height = 40 + shown.length * (bar + 8);
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-size="13" font-weight="bold">Batch Service benchmark: measured ÷ target (line = target)</text>` +
    `${lines.join('')}<line x1="${left + scale}" y1="24" x2="${left + scale}" y2="${height - 6}" stroke="#333" stroke-dasharray="4 3"/></svg>`
  );
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Writes `<name>.json` (figures, ratios, settings), `<name>.svg` (the chart) and `<name>.md` (the table) into
 * `directory`; returns their paths.
 */
export function save(directory: string, name: string, figures: Figure[], settings: Record<string, unknown>): string[] {
  mkdirSync(directory, { recursive: true });
  const measuredAt = new Date().toISOString();
  const results = figures.map((f) => ({ ...f, ratio: ratio(f), meetsTarget: meets(f) }));
  const paths = ['json', 'svg', 'md'].map((extension) => join(directory, `${name}.${extension}`));
  writeFileSync(paths[0], JSON.stringify({ measuredAt, settings, results }, null, 2) + '\n');
  writeFileSync(paths[1], svg(figures) + '\n');
  writeFileSync(paths[2], markdown(figures, measuredAt, settings) + '\n');
  return paths;
}
