/**
 * Loaded before the unit tier (npm test's unit stage, `--import`): a unit test starts no process,
 * listens on no port and opens no connection. Each of those throws here, naming the rule, so a
 * test that needs one fails in the unit tier and moves to test/integration. tsx compiles in its own
 * loader thread, which this does not touch.
 */
import childProcess from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';

function refuse(what: string): never {
  throw new Error(`a unit test ${what}: that test belongs in test/integration (test/unit runs in process only)`);
}

const cp = childProcess as unknown as Record<string, unknown>;
for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
  cp[name] = () => refuse(`starts a process (child_process.${name})`);
}
net.Server.prototype.listen = () => refuse('listens on a port');
net.Socket.prototype.connect = () => refuse('opens a connection');
syncBuiltinESMExports();
