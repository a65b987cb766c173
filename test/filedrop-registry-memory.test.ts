import { memoryRegistry } from '../machines/filedrop/registry.js';
import { peerRegistryCompliance } from './filedrop-registry-compliance.js';

peerRegistryCompliance('filedrop memoryRegistry', async () => {
  const registry = memoryRegistry();
  return { a: registry, b: registry, close: async () => {} };
});
