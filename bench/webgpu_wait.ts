/**
 * What a read back and a wait cost through Deno's WebGPU on this machine, without TensorFlow.js:
 * `deno run -A bench/webgpu_wait.ts` prints, three times, the milliseconds of a `mapAsync` read of 256 bytes after a
 * copy (`map_ms`), of an empty submission and `onSubmittedWorkDone` (`done_ms`), of a submission of one small copy
 * (`submit_ms`), and of the wait for 200 such submissions (`drain_ms`).
 *
 * @module
 */
const a = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
console.log(JSON.stringify({ adapter: a?.info?.description, vendor: a?.info?.vendor }));
const d = await a!.requestDevice();
const b = d.createBuffer({ size: 256, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const s = d.createBuffer({
  size: 256,
  usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
});
for (let k = 0; k < 3; k++) {
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) {
    const e = d.createCommandEncoder();
    e.copyBufferToBuffer(s, 0, b, 0, 256);
    d.queue.submit([e.finish()]);
    await b.mapAsync(GPUMapMode.READ);
    b.unmap();
  }
  const t1 = performance.now();
  for (let i = 0; i < 20; i++) {
    d.queue.submit([]);
    await d.queue.onSubmittedWorkDone();
  }
  const t2 = performance.now();
  for (let i = 0; i < 200; i++) {
    const e = d.createCommandEncoder();
    e.copyBufferToBuffer(s, 0, s, 128, 64);
    d.queue.submit([e.finish()]);
  }
  const t3 = performance.now();
  await d.queue.onSubmittedWorkDone();
  console.log(
    JSON.stringify({
      map_ms: (t1 - t0) / 20,
      done_ms: (t2 - t1) / 20,
      submit_ms: (t3 - t2) / 200,
      drain_ms: performance.now() - t3,
    }),
  );
}
