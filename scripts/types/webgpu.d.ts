// The npm `webgpu` package (Dawn for Node) is installed only on the GPU machine (.device/, see ../shared/gpu):
// this declares the two names our Node scripts use, so `tsc` can check them where it is absent.
declare module 'webgpu' {
  export function create(flags: string[]): GPU;
  export const globals: Record<string, unknown>;
}
