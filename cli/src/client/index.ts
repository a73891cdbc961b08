export { ConnectionError, DaemonError, type DockerClient, type Query, type RequestOptions, type StreamResponse } from './client.js';
export { DEFAULT_HOST, HttpDockerClient, parseClientHost } from './http.js';
