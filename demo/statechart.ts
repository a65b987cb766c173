/**
 * A machine's diagram drawn from its definition (`machine.config`, or the
 * `definition` JSON an inspection event carries): nested boxes for states,
 * parallel regions side by side, each state with its outgoing transitions
 * (`event → target [guard]`, as `scripts/diagram.ts` writes them for the
 * READMEs). The states in `value` are highlighted. Plain DOM, no layout
 * engine and nothing fetched, so it works offline.
 */

/** The parts of a state node's config the diagram reads. */
export interface StateConfig {
  id?: string;
  type?: string;
  initial?: string;
  states?: Record<string, StateConfig>;
  on?: Record<string, unknown>;
  after?: Record<string, unknown>;
  always?: unknown;
  invoke?: unknown;
}

/** A snapshot's `value`: a state key, or nested keys for compound and parallel states. */
export type StateValue = string | { [key: string]: StateValue };

/** The dotted paths of every active state in `value` (`{ a: 'b' }` → `a`, `a.b`). */
export function activePaths(value: StateValue | undefined, prefix = ''): Set<string> {
  const paths = new Set<string>();
  if (value === undefined || value === null) return paths;
  if (typeof value === 'string') {
    paths.add(prefix + value);
    return paths;
  }
  for (const [key, inner] of Object.entries(value)) {
    paths.add(prefix + key);
    for (const path of activePaths(inner, `${prefix}${key}.`)) paths.add(path);
  }
  return paths;
}

/** `a.b.c` for a snapshot value, parallel regions joined by `, `. */
export function describeValue(value: StateValue | undefined): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  return Object.entries(value)
    .map(([key, inner]) => (typeof inner === 'string' ? `${key}.${inner}` : `${key}.(${describeValue(inner)})`))
    .join(', ');
}

const targetsOf = (transition: unknown): { target: string; guard?: string }[] => {
  if (transition === undefined || transition === null) return [];
  if (Array.isArray(transition)) return transition.flatMap(targetsOf);
  if (typeof transition === 'string') return [{ target: transition }];
  if (typeof transition === 'object') {
    const { target, guard } = transition as { target?: unknown; guard?: unknown };
    const name =
      typeof guard === 'string'
        ? guard
        : guard && typeof guard === 'object'
          ? String((guard as { type?: unknown }).type ?? 'guard')
          : undefined;
    const targets = Array.isArray(target) ? target : target === undefined ? [] : [target];
    return targets
      .filter((t): t is string => typeof t === 'string')
      .map((t) => ({ target: t, ...(name && { guard: name }) }));
  }
  return [];
};

/** Every targeted transition of one state, as `[label, target, guard?]`. */
export function transitionsOf(state: StateConfig): Array<[string, string, string?]> {
  const rows: Array<[string, string, string?]> = [];
  const add = (label: string, transition: unknown) => {
    for (const { target, guard } of targetsOf(transition)) rows.push([label, target.replace(/^\./, ''), guard]);
  };
  for (const [event, t] of Object.entries(state.on ?? {})) add(event, t);
  for (const [delay, t] of Object.entries(state.after ?? {})) add(`after ${delay}`, t);
  if (state.always !== undefined) add('always', state.always);
  const invokes = Array.isArray(state.invoke) ? state.invoke : state.invoke ? [state.invoke] : [];
  for (const invoke of invokes as Array<{ src?: unknown; onDone?: unknown; onError?: unknown }>) {
    const src = typeof invoke.src === 'string' ? invoke.src : 'actor';
    add(`${src} done`, invoke.onDone);
    add(`${src} error`, invoke.onError);
  }
  return rows;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Draws `config` into a new element, the states in `value` marked `active`.
 * `data-path` on each box is the state's dotted path.
 */
export function renderStatechart(config: StateConfig, value?: StateValue): HTMLElement {
  const active = activePaths(value);
  const box = (key: string, state: StateConfig, path: string, initial: boolean): HTMLElement => {
    const node = el('div', 'sc-state');
    node.dataset.path = path;
    if (active.has(path)) node.classList.add('active');
    if (state.type === 'final') node.classList.add('final');
    const title = el('div', 'sc-name', (initial ? '→ ' : '') + key);
    node.append(title);
    const rows = transitionsOf(state);
    if (rows.length > 0) {
      const list = el('ul', 'sc-transitions');
      for (const [label, target, guard] of rows) {
        list.append(el('li', '', `${label} → ${target}${guard ? ` [${guard}]` : ''}`));
      }
      node.append(list);
    }
    node.append(children(state, path));
    return node;
  };
  const children = (state: StateConfig, path: string): HTMLElement => {
    const wrap = el('div', state.type === 'parallel' ? 'sc-children sc-parallel' : 'sc-children');
    for (const [key, child] of Object.entries(state.states ?? {})) {
      wrap.append(box(key, child, path ? `${path}.${key}` : key, state.type !== 'parallel' && state.initial === key));
    }
    return wrap;
  };
  const root = el('div', 'sc-root');
  root.append(children(config, ''));
  return root;
}

/** Marks the states of `value` active in a diagram drawn by {@link renderStatechart}. */
export function highlight(diagram: HTMLElement, value: StateValue | undefined): void {
  const active = activePaths(value);
  for (const node of diagram.querySelectorAll<HTMLElement>('.sc-state')) {
    node.classList.toggle('active', active.has(node.dataset.path ?? ''));
  }
}
