// HEALTHCHECK of the Volto image: Volto's /ok route (express-middleware/ok.js) on PORT answers
// 200 "ok" once the server listens; anything else, an error or 3 s without an answer is unhealthy.
const http = require('http');

const request = http.get(
  { host: '127.0.0.1', port: process.env.PORT || 3000, path: '/ok', timeout: 3000 },
  (response) => {
    process.exit(response.statusCode === 200 ? 0 : 1);
  },
);
request.on('timeout', () => request.destroy(new Error('timeout')));
request.on('error', () => process.exit(1));
