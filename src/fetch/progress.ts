import type {Descriptor} from '../oci/descriptor.js'
import {silentLogger, type Logger} from '../util/log.js'

/** What the progress line counts per artifact: its blobs, and those it does not download (generated). */
export interface ProgressArtifact {
  blobs: Descriptor[]
  generated?: Set<string>
}

/** Progress on stderr (bytes, rate, artifacts done): a status line rewritten 4 times a second on a terminal, a
 *  plain line every 5 s in logs (CI), and a closing line. */
export class Progress {
  private downloaded = 0
  private present = 0
  private artifactsDone = 0
  private readonly started = Date.now()
  private readonly timer: NodeJS.Timeout | undefined
  /** Per artifact, the downloadable blobs not yet in the cache; and which artifacts wait for each digest. */
  private readonly remaining: number[]
  private readonly waiting = new Map<string, number[]>()

  constructor(
    private readonly logger: Logger,
    private readonly total: number,
    private readonly work: ProgressArtifact[],
  ) {
    this.remaining = work.map((w, i) => {
      const digests = new Set(w.blobs.filter((d) => !w.generated?.has(d.digest)).map((d) => d.digest))
      for (const d of digests) this.waiting.set(d, [...(this.waiting.get(d) ?? []), i])
      return digests.size
    })
    if (total > 0 && logger !== silentLogger) {
      this.timer = setInterval(() => this.line(), logger.interactive ? 250 : 5000)
      this.timer.unref()
    }
  }

  add(digest: string, downloaded: number, present: number): void {
    this.downloaded += downloaded
    this.present += present
    for (const i of this.waiting.get(digest) ?? []) if (--this.remaining[i] === 0) this.artifactsDone++
  }

  private line(final = false): void {
    const secs = Math.max((Date.now() - this.started) / 1000, 0.001)
    const rate = this.downloaded / secs
    const text = `fetch${final ? ' done' : ''}: ${this.artifactsDone}/${this.work.length} artifacts, ${mib(this.downloaded + this.present)} of ${mib(this.total)} (${mib(this.downloaded)} downloaded, ${mib(rate)}/s)`
    // A terminal gets one line rewritten in place; logs get a plain line every few seconds.
    if (this.logger.interactive && this.logger.status) {
      this.logger.status(final ? '' : text)
      if (final) this.logger.info(text)
    } else this.logger.info(text)
  }

  done(): void {
    if (this.timer) clearInterval(this.timer)
    if (this.logger !== silentLogger) this.line(true)
  }
}

function mib(n: number): string {
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`
}
