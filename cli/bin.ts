import { main } from './main.js';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // A WebRTC library may hold sockets open a while after closing: do not wait on it forever.
  setTimeout(() => process.exit(code), 2000).unref();
});
