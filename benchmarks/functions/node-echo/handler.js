// Echo: answers every event with a prefix and the event itself.
const prefix = "";
exports.handler = (event, context, callback) => callback(null, { prefix, event });
