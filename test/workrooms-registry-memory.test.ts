import { memoryRegistry } from '../machines/workrooms/registry.js';
import { workroomsRegistryCompliance } from './workrooms-registry-compliance.js';

workroomsRegistryCompliance('workrooms memoryRegistry', async () => {
  const registry = memoryRegistry();
  return { a: registry, b: registry, evicted: [], close: async () => {} };
});
