import { memoryFileRegistry } from '../machines/registry/registry.js';
import { fileRegistryCompliance } from './file-registry-compliance.js';

fileRegistryCompliance('memoryFileRegistry', async () => {
  const registry = memoryFileRegistry();
  return { a: registry, b: registry, close: async () => {} };
});
