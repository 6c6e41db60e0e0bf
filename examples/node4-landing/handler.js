// A landing page served by a Node 4 style Lambda handler.
//
//   fnctl deploy service landing -f examples/node4-landing --build-template node4 \
//     --build-argument HANDLER=handler.landingPage --build-argument EVENT=API_GATEWAY
//
// With EVENT=API_GATEWAY the result's statusCode, headers and body become the
// HTTP response; without it the client gets this object as JSON.
'use strict';

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

exports.landingPage = function (event, context, callback) {
  const query = (event && event.queryStringParameters) || {};
  const name = escapeHtml(query.name || 'world');
  const html = '<html>' +
    '<head><title>fnctl landing page</title></head>' +
    '<body><h1>Hello, ' + name + '!</h1>' +
    '<p>Served by ' + escapeHtml(context.functionName) + ' on the node4 runtime.</p>' +
    '</body></html>';
  callback(null, {
    statusCode: 200,
    headers: { 'Content-Type': 'text/html' },
    body: html,
  });
};
