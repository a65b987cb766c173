import type { AnyStateMachine, AnyStateNode } from 'xstate';

/**
 * A Mermaid `stateDiagram-v2` of a machine, generated from its definition,
 * so the protocol READMEs cannot drift from the code. Guards are shown in
 * brackets; targetless transitions (actions only) are left out.
 */
export function mermaid(machine: AnyStateMachine): string {
  const lines = ['stateDiagram-v2'];
  const name = (node: AnyStateNode) => node.path.join('_') || node.id;
  const label = (event: string) =>
    event.startsWith('xstate.after.') ? `after ${event.split('.')[2]}` : event === '' ? 'always' : event;

  const walk = (node: AnyStateNode, indent: string) => {
    const children = Object.values(node.states) as AnyStateNode[];
    if (node.initial?.target?.length && node.type !== 'parallel') {
      lines.push(`${indent}[*] --> ${name(node.initial.target[0] as AnyStateNode)}`);
    }
    children.forEach((child, i) => {
      if (node.type === 'parallel' && i > 0) lines.push(`${indent}--`);
      const inner = Object.keys(child.states).length > 0;
      if (inner) {
        lines.push(`${indent}state ${name(child)} {`);
        walk(child, indent + '  ');
        lines.push(`${indent}}`);
      } else {
        lines.push(`${indent}state "${child.key}" as ${name(child)}`);
      }
      if (child.type === 'final') lines.push(`${indent}${name(child)} --> [*]`);
    });
    for (const child of children) {
      for (const [event, transitions] of child.transitions) {
        for (const t of transitions) {
          for (const target of t.target ?? []) {
            const guard = t.guard
              ? ` [${typeof t.guard === 'string' ? t.guard : ((t.guard as { type?: string }).type ?? 'guard')}]`
              : '';
            lines.push(`${indent}${name(child)} --> ${name(target as AnyStateNode)}: ${label(event)}${guard}`);
          }
        }
      }
      for (const t of child.always ?? []) {
        for (const target of t.target ?? []) {
          const guard = t.guard
            ? ` [${typeof t.guard === 'string' ? t.guard : ((t.guard as { type?: string }).type ?? 'guard')}]`
            : '';
          lines.push(`${indent}${name(child)} --> ${name(target as AnyStateNode)}: always${guard}`);
        }
      }
    }
  };
  walk(machine.root, '  ');
  return lines.join('\n');
}
