/**
 * Pictures and charts for notebooks and reports: an RGB image or a Plotly
 * figure becomes an object that Deno's Jupyter kernel displays when it is a
 * cell's last expression (and that prints as a short text elsewhere).
 *
 * @module
 */
import { encodeBase64 } from "./base64.ts";
import { escapeHtml } from "./html.ts";
import { encodePng, type RGBImage } from "./image.ts";

/** A MIME bundle the Deno kernel displays. */
export type MimeBundle = Record<string, unknown>;

/** The symbol Deno's Jupyter kernel looks for on a cell's result. */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display") as never;

/** Something a notebook cell can show. */
export interface Displayable {
  /** @internal */
  [JUPYTER_DISPLAY](): MimeBundle;
  /** The bundle itself, for reports and tests. */
  bundle: MimeBundle;
}

function displayable(bundle: MimeBundle): Displayable {
  return { [JUPYTER_DISPLAY]: () => bundle, bundle };
}

/** Shows an RGB image as a PNG, scaled up by `zoom` (nearest neighbour in the browser). */
export async function showImage(img: RGBImage, zoom = 1): Promise<Displayable> {
  const png = encodeBase64(await encodePng(img));
  return displayable({
    "image/png": png,
    "text/plain": `<image ${img.width}x${img.height}>`,
    "text/html": `<img src="data:image/png;base64,${png}" width="${
      img.width * zoom
    }" style="image-rendering: pixelated">`,
  });
}

/** A Plotly figure: `data` traces and a `layout`, as in plotly.js. */
export interface PlotlyFigure {
  /** Plotly traces. */
  data: Record<string, unknown>[];
  /** Plotly layout. */
  layout?: Record<string, unknown>;
}

/**
 * Shows a Plotly figure (`application/vnd.plotly.v1+json`), with an HTML table
 * of the traces' numbers as the fallback for front ends without Plotly.
 */
export function showPlotly(fig: PlotlyFigure): Displayable {
  const rows = fig.data.map((t) => {
    const name = escapeHtml(String(t.name ?? t.type ?? "trace"));
    const xs = (t.x as unknown[] | undefined) ?? [];
    const ys = (t.y as unknown[] | undefined) ?? [];
    const cells = xs.map((x, i) => `${escapeHtml(String(x))}: ${escapeHtml(String(ys[i]))}`).join(", ");
    return `<tr><td>${name}</td><td>${cells}</td></tr>`;
  }).join("");
  const title = escapeHtml(String((fig.layout?.title as { text?: string })?.text ?? fig.layout?.title ?? ""));
  return displayable({
    "application/vnd.plotly.v1+json": { data: fig.data, layout: fig.layout ?? {} },
    "text/html": `<b>${title}</b><table>${rows}</table>`,
    "text/plain": `<plotly figure: ${title || fig.data.length + " traces"}>`,
  });
}

/** Shows a Markdown text. */
export function showMarkdown(md: string): Displayable {
  return displayable({ "text/markdown": md, "text/plain": md });
}
