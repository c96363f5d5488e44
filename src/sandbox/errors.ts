import { randomUUID } from 'node:crypto';

/** An error as Misskey's ApiCallService sends it: `{ error: { message, code, id, kind, info? } }`. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    readonly id: string,
    message: string,
    readonly kind: 'client' | 'server' | 'permission' = 'client',
    readonly httpStatus?: number,
    readonly info?: unknown,
  ) {
    super(message);
  }

  get status(): number {
    return (
      this.httpStatus ?? (this.kind === 'client' ? 400 : this.kind === 'permission' ? 403 : 500)
    );
  }

  toBody(): { error: Record<string, unknown> } {
    const error: Record<string, unknown> = {
      message: this.message,
      code: this.code,
      id: this.id,
      kind: this.kind,
    };
    if (this.info !== undefined) {
      error.info = this.info;
    }
    return { error };
  }
}

/** A domain error with the id Misskey declares for one endpoint (status 400 unless given). */
export function apiError(code: string, id: string, message: string, status?: number): ApiError {
  return new ApiError(code, id, message, 'client', status);
}

/**
 * Misskey throws many domain failures as a plain `Error`; the client then gets
 * `500 INTERNAL_ERROR` with the reason in `info.e.message` (API.md §4.3).
 */
export function internalError(message: string, errorClass = 'Error'): ApiError {
  return new ApiError(
    'INTERNAL_ERROR',
    '5d37dbcb-891e-41ca-a3d6-e690c97775ac',
    'Internal error occurred. Please contact us if the error persists.',
    'server',
    500,
    { e: { message, code: errorClass, id: randomUUID() } },
  );
}

/** TypeORM's error for `findOneByOrFail` on a missing row, as Misskey leaks it. */
export function entityNotFound(entity: string): ApiError {
  return internalError(
    `Could not find any entity of type "${entity}" matching: [object Object]`,
    'EntityNotFoundError',
  );
}

export const errors = {
  invalidParam: (param: string, reason: string) =>
    new ApiError(
      'INVALID_PARAM',
      '3d81ceae-475f-4600-b2a8-2bc116157532',
      'Invalid param.',
      'client',
      400,
      { param, reason },
    ),
  /** ApiCallService's cast of a GET or multipart string that is not JSON. */
  castFailed: (param: string, type: string) =>
    new ApiError(
      'INVALID_PARAM',
      '0b5f1631-7c1a-41a6-b399-cce335f34d85',
      'Invalid param.',
      'client',
      400,
      { param, reason: `cannot cast to ${type}` },
    ),
  credentialRequired: () =>
    new ApiError(
      'CREDENTIAL_REQUIRED',
      '1384574d-a912-4b81-8601-c7b1c4085df1',
      'Credential required.',
      'client',
      401,
    ),
  authenticationFailed: () =>
    new ApiError(
      'AUTHENTICATION_FAILED',
      'b0a7f5f8-dc2f-4171-b91f-de88ad238e14',
      'Authentication failed. Please ensure your token is correct.',
      'client',
      401,
    ),
  accessDenied: () =>
    new ApiError(
      'ACCESS_DENIED',
      '56f35758-7dd5-468b-8439-5d6fb8ec9b8e',
      'Access denied.',
      'client',
      400,
    ),
  permissionDenied: () =>
    new ApiError(
      'PERMISSION_DENIED',
      '1370e5b7-d4eb-4566-bb1d-7748ee6a1838',
      'Your app does not have the necessary permissions to use this endpoint.',
      'permission',
      403,
    ),
  rolePermissionDenied: () =>
    new ApiError(
      'ROLE_PERMISSION_DENIED',
      '7f86f06f-7e15-4057-8561-f4b6d4ac755a',
      'You are not assigned to a required role.',
      'permission',
      403,
    ),
  notModerator: () =>
    new ApiError(
      'ROLE_PERMISSION_DENIED',
      'd33d5333-db36-423d-a8f9-1a2b9549da41',
      'You are not assigned to a moderator role.',
      'permission',
      403,
    ),
  notAdmin: () =>
    new ApiError(
      'ROLE_PERMISSION_DENIED',
      'c3d38592-54c0-429d-be96-5636b0431a61',
      'You are not assigned to an administrator role.',
      'permission',
      403,
    ),
  suspended: () =>
    new ApiError(
      'YOUR_ACCOUNT_SUSPENDED',
      'a8c724b3-6e9c-4b46-b1a8-bc3ed6258370',
      'Your account has been suspended.',
      'permission',
      403,
    ),
  rateLimitExceeded: (info: unknown) =>
    new ApiError(
      'RATE_LIMIT_EXCEEDED',
      'd5826d14-3982-4d2e-8011-b9e9f02499ef',
      'Rate limit exceeded. Please try again later.',
      'client',
      429,
      info,
    ),
  unknownEndpoint: () =>
    new ApiError(
      'UNKNOWN_API_ENDPOINT',
      '2ca3b769-540a-4f08-9dd5-b5a825b6d0f1',
      'Unknown API endpoint.',
      'client',
      404,
    ),
};
