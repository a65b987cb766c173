import { memoryRegistry } from '../machines/swarm/registry.js';
import { matchRegistryCompliance } from './match-registry-compliance.js';

matchRegistryCompliance('swarm memoryRegistry', async () => {
  const registry = memoryRegistry();
  return { a: registry, b: registry, close: async () => {} };
});
