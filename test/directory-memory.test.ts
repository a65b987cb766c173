import { memoryDirectory } from '../machines/cloudlink/directory.js';
import { directoryCompliance } from './directory-compliance.js';

directoryCompliance('memoryDirectory', async () => {
  const directory = memoryDirectory();
  return { a: directory, b: directory, close: async () => {} };
});
