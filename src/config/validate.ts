/**
 * Small helpers for walking an untrusted YAML tree while collecting every problem with its key
 * path (`tenants[0].client_id: ...`), instead of stopping at the first.
 */
export interface Problem {
  path: string;
  message: string;
}

export class Problems {
  readonly list: Problem[] = [];
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
  get empty(): boolean {
    return this.list.length === 0;
  }
}

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Reports keys of `obj` that are not in `known` (typos must not silently fall back to defaults). */
export function checkKeys(p: Problems, path: string, obj: Obj, known: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) {
      p.add(join(path, k), `unknown key (expected one of: ${known.join(', ')})`);
    }
  }
}

export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

/** Reads an optional sub-mapping; reports and returns {} when it is not a mapping. */
export function section(p: Problems, path: string, parent: Obj, key: string): Obj {
  const v = parent[key];
  if (v === undefined || v === null) return {};
  if (!isObj(v)) {
    p.add(join(path, key), `must be a mapping, got ${typeName(v)}`);
    return {};
  }
  return v;
}

export function optString(p: Problems, path: string, obj: Obj, key: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.trim() === '') {
    p.add(join(path, key), `must be a non-empty string, got ${typeName(v)}`);
    return undefined;
  }
  return v.trim();
}

export function optInt(
  p: Problems,
  path: string,
  obj: Obj,
  key: string,
  min: number,
  max: number,
): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    p.add(join(path, key), `must be an integer from ${min} to ${max}, got ${typeName(v)}`);
    return undefined;
  }
  return v;
}

export function optBool(p: Problems, path: string, obj: Obj, key: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') {
    p.add(join(path, key), `must be true or false, got ${typeName(v)}`);
    return undefined;
  }
  return v;
}
