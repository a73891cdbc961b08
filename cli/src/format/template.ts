/**
 * The small part of Go templates that scripts use with `--format`: `{{json .}}`, `{{json .A.B}}`,
 * `{{.A.B}}`, and literal text with \n / \t escapes. Anything else is refused clearly.
 */
export function renderTemplate(template: string, data: unknown): string {
  const text = template.replace(/\\n/g, '\n').replace(/\\t/g, '\t');
  return (
    text.replace(/\{\{-?\s*(.*?)\s*-?\}\}/g, (_match, expr: string) => {
      const json = /^json\s+(\.[\w.]*)$/.exec(expr);
      if (json) return JSON.stringify(lookup(data, json[1]!));
      if (/^\.[\w.]*$/.test(expr)) return show(lookup(data, expr));
      throw new TemplateError(`template: unsupported expression {{${expr}}} (supported: {{.Field}}, {{json .}}, {{json .Field}})`);
    }) + '\n'
  );
}

export class TemplateError extends Error {}

function lookup(data: unknown, path: string): unknown {
  let value = data;
  for (const key of path.split('.').filter(Boolean)) {
    if (value === null || typeof value !== 'object') throw new TemplateError(`template: can't evaluate field ${key}`);
    if (!(key in (value as object))) throw new TemplateError(`template: can't evaluate field ${key} in type ${Array.isArray(value) ? 'list' : 'object'}`);
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function show(value: unknown): string {
  if (value === null || value === undefined) return '<nil>';
  if (Array.isArray(value)) return `[${value.map(show).join(' ')}]`;
  if (typeof value === 'object') return `map[${Object.entries(value as object).map(([k, v]) => `${k}:${show(v)}`).join(' ')}]`;
  return String(value);
}
