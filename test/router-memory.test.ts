import { memoryRouter } from '../src/router.js';
import { jsonEncoder, routerCompliance } from './router-compliance.js';

routerCompliance('memoryRouter', async () => {
  const router = memoryRouter(jsonEncoder);
  return { a: router, b: router, close: async () => {} };
});
