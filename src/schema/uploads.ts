import { GraphQLError } from 'graphql';
import { builder } from './builder.js';
import { Upload } from './upload.js';

export { Upload } from './upload.js';

function notAnUpload(): GraphQLError {
  return new GraphQLError(
    'A File is sent as a part of a multipart request (GraphQL multipart request spec), mapped to this variable.',
    { extensions: { code: 'BAD_USER_INPUT' } },
  );
}

builder.scalarType('File', {
  description:
    'A file uploaded in a multipart request (GraphQL multipart request spec): input only.',
  serialize: () => {
    throw new GraphQLError('File is an input type.');
  },
  parseValue: (value) => {
    if (value instanceof Upload) {
      return value;
    }
    throw notAnUpload();
  },
  parseLiteral: () => {
    throw notAnUpload();
  },
});
