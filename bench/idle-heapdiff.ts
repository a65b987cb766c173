/**
 * What one idle connection costs, by kind of object: the difference between
 * two heap snapshots that `npm run bench:idle -- --snapshot` wrote (before and
 * after its connections), grouped by node type and name (constructor, closure
 * name, `system / Context`, …), divided by the number of connections.
 *
 *   npx tsx bench/idle-heapdiff.ts <before.heapsnapshot> <after.heapsnapshot> <connections> [--top 60] [--shapes]
 *
 * Self sizes only (what each object occupies itself, not what it keeps
 * alive), so the rows add up to the growth of the heap.
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
      location_fields: string[];
    };
  };
  nodes: number[];
  edges: number[];
  locations: number[];
  strings: string[];
}

/**
 * Bytes and count of each `type name` group in a snapshot. With `shapes`,
 * plain objects and closure contexts are told apart by their first property
 * names, closures by their source position, and nameless arrays (the tables
 * of Maps and Sets, elements) by what holds them.
 */
function groups(file: string, shapes: boolean): Map<string, { size: number; count: number }> {
  const data = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const meta = data.snapshot.meta;
  const fields = meta.node_fields;
  const types = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const edgeCountAt = fields.indexOf('edge_count');
  const ew = meta.edge_fields.length;
  const nodeCount = data.nodes.length / width;
  const edgeNames = new Map<number, string[]>();
  const holder = new Int32Array(nodeCount).fill(-1);
  const holderEdge: string[] = new Array<string>(nodeCount);
  const location = new Map<number, string>();
  if (shapes) {
    for (let e = 0, n = 0; n < nodeCount; n++) {
      const count = data.nodes[n * width + edgeCountAt]!;
      const names: string[] = [];
      for (let k = 0; k < count; k++, e += ew) {
        const kind = edgeTypes[data.edges[e]!]!;
        const nameOrIndex = data.edges[e + 1]!;
        const to = data.edges[e + 2]! / width;
        const label = kind === 'element' || kind === 'hidden' ? `[${nameOrIndex}]` : data.strings[nameOrIndex]!;
        if ((kind === 'property' || kind === 'context') && names.length < 6) names.push(label);
        if (kind !== 'weak' && kind !== 'shortcut' && holder[to] === -1) {
          holder[to] = n;
          holderEdge[to] = label;
        }
      }
      edgeNames.set(n, names);
    }
    const lw = meta.location_fields.length;
    const objectAt = meta.location_fields.indexOf('object_index');
    const lineAt = meta.location_fields.indexOf('line');
    const scriptAt = meta.location_fields.indexOf('script_id');
    for (let i = 0; i < data.locations.length; i += lw) {
      location.set(
        data.locations[i + objectAt]! / width,
        `@${data.locations[i + scriptAt]!}:${data.locations[i + lineAt]! + 1}`,
      );
    }
  }
  const label = (n: number) =>
    `${types[data.nodes[n * width + typeAt]!]!} ${data.strings[data.nodes[n * width + nameAt]!]!.slice(0, 40)}`;
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < data.nodes.length; i += width) {
    const n = i / width;
    const type = types[data.nodes[i + typeAt]!]!;
    let name = data.strings[data.nodes[i + nameAt]!]!;
    if (shapes) {
      if ((type === 'object' && name === 'Object') || name === 'system / Context') {
        name += ` {${edgeNames.get(n)!.join(',')}}`;
      } else if (type === 'closure') {
        name += ` ${location.get(n) ?? ''}`;
      } else if ((type === 'array' || type === 'hidden') && holder[n]! >= 0) {
        // Two levels: an Array's or a Set's own holder says whose it is.
        const h = holder[n]!;
        const up = holder[h]!;
        name += ` in ${label(h)}.${holderEdge[n]}${up >= 0 ? ` in ${label(up)}.${holderEdge[h]}` : ''}`;
      }
    }
    // Strings and numbers by type only: their values are data, not kinds.
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number') {
      name = '';
    } else if (name.length > 100) name = `${name.slice(0, 97)}...`;
    const key = `${type} ${name}`;
    const entry = out.get(key) ?? { size: 0, count: 0 };
    entry.size += data.nodes[i + sizeAt]!;
    entry.count++;
    out.set(key, entry);
  }
  return out;
}

function main() {
  const [beforeFile, afterFile, connections] = process.argv.slice(2);
  const n = Number(connections);
  if (!beforeFile || !afterFile || !(n > 0)) {
    throw new Error('usage: idle-heapdiff.ts <before> <after> <connections> [--top N] [--shapes]');
  }
  const topAt = process.argv.indexOf('--top');
  const top = topAt > 0 ? Number(process.argv[topAt + 1]) : 60;
  const shapes = process.argv.includes('--shapes');
  const before = groups(beforeFile, shapes);
  const after = groups(afterFile, shapes);
  const rows = [...after].map(([key, a]) => {
    const b = before.get(key) ?? { size: 0, count: 0 };
    return { key, bytes: (a.size - b.size) / n, count: (a.count - b.count) / n };
  });
  rows.sort((x, y) => y.bytes - x.bytes);
  const total = rows.reduce((s, r) => s + r.bytes, 0);
  console.log(`${'B/conn'.padStart(8)} ${'objs/conn'.padStart(9)}  type name`);
  for (const r of rows.slice(0, top)) {
    console.log(`${r.bytes.toFixed(0).padStart(8)} ${r.count.toFixed(2).padStart(9)}  ${r.key}`);
  }
  console.log(`${total.toFixed(0).padStart(8)} ${''.padStart(9)}  total self size per connection`);
}

main();
