/**
 * Regenerates the machine diagrams in the protocol READMEs from the machine
 * definitions: `npm run docs`. `test/docs.test.ts` fails when a README is
 * out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { AnyStateMachine } from 'xstate';
import { cloudlinkHost } from '../machines/cloudlink/host.machine.js';
import { cloudlinkPeer } from '../machines/cloudlink/peer.machine.js';
import { cloudlinkSession } from '../machines/cloudlink/server.machine.js';
import { filedropReceiver } from '../machines/filedrop/receiver.machine.js';
import { filedropSender, filedropSenderTransfer } from '../machines/filedrop/sender.machine.js';
import { filedropSession } from '../machines/filedrop/server.machine.js';
import { registryClient } from '../machines/registry/client.machine.js';
import { registryFetch } from '../machines/registry/fetch.machine.js';
import { registryServe } from '../machines/registry/serve.machine.js';
import { registrySession } from '../machines/registry/server.machine.js';
import { workroomsClient } from '../machines/workrooms/client.machine.js';
import { workroomsSession } from '../machines/workrooms/server.machine.js';
import { swarmAlice } from '../machines/swarm/alice.machine.js';
import { swarmBob } from '../machines/swarm/bob.machine.js';
import { swarmMatch } from '../machines/swarm/match.machine.js';
import { swarmPeer } from '../machines/swarm/peer.machine.js';
import { swarmSession } from '../machines/swarm/server.machine.js';
import { mermaid } from './diagram.js';

export const diagrams: Record<string, { file: string; machines: Record<string, AnyStateMachine> }> = {
  cloudlink: {
    file: 'machines/cloudlink/README.md',
    machines: { cloudlinkSession, cloudlinkHost, cloudlinkPeer },
  },
  filedrop: {
    file: 'machines/filedrop/README.md',
    machines: { filedropSession, filedropSender, filedropSenderTransfer, filedropReceiver },
  },
  swarm: {
    file: 'machines/swarm/README.md',
    machines: { swarmSession, swarmPeer, swarmMatch, swarmAlice, swarmBob },
  },
  registry: {
    file: 'machines/registry/README.md',
    machines: { registrySession, registryClient, registryFetch, registryServe },
  },
  workrooms: {
    file: 'machines/workrooms/README.md',
    machines: { workroomsSession, workroomsClient },
  },
};

/** The README text with every `<!-- diagram:NAME -->…<!-- /diagram -->` block regenerated. */
export function render(text: string, machines: Record<string, AnyStateMachine>): string {
  return text.replace(/<!-- diagram:(\w+) -->[\s\S]*?<!-- \/diagram -->/g, (block, name: string) => {
    const machine = machines[name];
    if (!machine) throw new Error(`README names an unknown machine "${name}"`);
    return `<!-- diagram:${name} -->\n\n\`\`\`mermaid\n${mermaid(machine)}\n\`\`\`\n\n<!-- /diagram -->`;
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const { file, machines } of Object.values(diagrams)) {
    const before = readFileSync(file, 'utf8');
    const after = render(before, machines);
    if (after !== before) writeFileSync(file, after);
    console.log(`${file}: ${after === before ? 'up to date' : 'updated'}`);
  }
}
