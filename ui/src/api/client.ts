// A typed client for the Codeyard API. Paths, path/query parameters, request bodies and
// responses are all checked against the generated OpenAPI types (schema.d.ts): every route
// declares its response model, so nothing here is written by hand.
import type { paths } from "./schema";

type Method = "get" | "post" | "put" | "patch" | "delete";
type Defined<T> = Exclude<T, undefined>;
type Op<P extends keyof paths, M extends Method> = Defined<paths[P][M]>;

/** Paths that support method M. */
export type PathFor<M extends Method> = {
  [P in keyof paths]: [Defined<paths[P][M]>] extends [never] ? never : P;
}[keyof paths];

type PathParams<O> = O extends { parameters: { path: infer PP } }
  ? [PP] extends [never] | [undefined]
    ? { path?: never }
    : { path: PP }
  : { path?: never };
type QueryParams<O> = O extends { parameters: { query?: infer Q } }
  ? [Defined<Q>] extends [never]
    ? { query?: never }
    : { query?: Defined<Q> }
  : { query?: never };
type JsonBody<O> = O extends { requestBody?: { content: { "application/json": infer B } } }
  ? B
  : never;

export type Options<P extends keyof paths, M extends Method> = PathParams<Op<P, M>> &
  QueryParams<Op<P, M>> & { signal?: AbortSignal; headers?: Record<string, string> };
/** The JSON a successful call answers (200, else 201), from the schema. */
type Json<R> = R extends { content: { "application/json": infer J } } ? J : unknown;
type Success<O> = O extends { responses: infer R }
  ? R extends { 200: infer OK }
    ? Json<OK>
    : R extends { 201: infer Created }
      ? Json<Created>
      : unknown
  : unknown;
export type Resp<P extends keyof paths, M extends Method> = Success<Op<P, M>>;

export type BodyOf<P extends keyof paths, M extends Method> = JsonBody<Op<P, M>>;

/** An RFC 7807 problem, as thrown by every failed request. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(problem.detail || problem.title || `HTTP ${status}`);
  }
}
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  current_status?: string;
  conflicts?: string[];
  errors?: { loc?: (string | number)[]; msg: string }[];
  [key: string]: unknown;
}

export function cookie(name: string): string | null {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return null;
}

/** The session cookie travels by itself; unsafe methods echo the CSRF cookie in a header. */
export function authHeaders(method = "GET"): Record<string, string> {
  const headers: Record<string, string> = {};
  if (!["GET", "HEAD", "OPTIONS"].includes(method.toUpperCase())) {
    const csrf = cookie("codeyard_csrf");
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  return headers;
}

let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}
/** The session is gone (expired, signed out elsewhere): go sign in again. */
export function unauthorized(): void {
  onUnauthorized();
}

export function buildUrl(
  path: string,
  params?: { path?: object; query?: object },
): string {
  let url = path.replace(/\{(\w+)\}/g, (_, key: string) => {
    const value = (params?.path as Record<string, unknown> | undefined)?.[key];
    if (value === undefined || value === null) throw new Error(`missing path parameter ${key}`);
    return encodeURIComponent(String(value));
  });
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params?.query ?? {})) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((item) => query.append(k, String(item)));
    else query.append(k, String(v));
  }
  const qs = query.toString();
  if (qs) url += `?${qs}`;
  return url;
}

async function send<T>(
  method: Method,
  path: string,
  given: object | undefined,
  body?: unknown,
  accept = "application/json",
): Promise<T> {
  const opts = (given ?? {}) as {
    path?: object;
    query?: object;
    signal?: AbortSignal;
    headers?: Record<string, string>;
  };
  const headers: Record<string, string> = {
    Accept: accept,
    ...authHeaders(method),
    ...opts.headers,
  };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(buildUrl(path, opts), {
    method: method.toUpperCase(),
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal: opts.signal,
  });
  if (!resp.ok) {
    let problem: Problem = { status: resp.status, title: resp.statusText };
    try {
      problem = { ...problem, ...((await resp.json()) as Problem) };
    } catch {
      /* not JSON: keep the status line */
    }
    if (resp.status === 401 && !path.startsWith("/api/auth/")) onUnauthorized();
    throw new ApiError(resp.status, problem);
  }
  if (resp.status === 204) return undefined as T;
  const type = resp.headers.get("content-type") ?? "";
  return (type.includes("json") ? await resp.json() : await resp.text()) as T;
}

export const api = {
  get<P extends PathFor<"get">>(path: P, opts?: Options<P, "get">) {
    return send<Resp<P, "get">>("get", path, opts as object | undefined);
  },
  text<P extends PathFor<"get">>(path: P, opts?: Options<P, "get">) {
    return send<string>("get", path, opts as object | undefined, undefined, "text/plain, */*");
  },
  post<P extends PathFor<"post">>(path: P, body?: BodyOf<P, "post">, opts?: Options<P, "post">) {
    return send<Resp<P, "post">>("post", path, opts as object | undefined, body ?? {});
  },
  put<P extends PathFor<"put">>(path: P, body: BodyOf<P, "put">, opts?: Options<P, "put">) {
    return send<Resp<P, "put">>("put", path, opts as object | undefined, body);
  },
  patch<P extends PathFor<"patch">>(path: P, body: BodyOf<P, "patch">, opts?: Options<P, "patch">) {
    return send<Resp<P, "patch">>("patch", path, opts as object | undefined, body);
  },
  delete<P extends PathFor<"delete">>(path: P, opts?: Options<P, "delete">) {
    return send<void>("delete", path, opts as object | undefined);
  },
};
