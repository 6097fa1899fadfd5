// An ordinary Lambda handler for Node.js: it runs under sor unchanged.
"use strict";

exports.hello = async (event, context) => {
  const name = (event && event.name) || "world";
  return {
    message: `hello ${name} from Node.js ${process.version}`,
    requestId: context.awsRequestId,
  };
};
