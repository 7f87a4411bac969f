/**
 * The app's artifact in the deployer's local cache
 * (`<localCacheDir()>/artifacts/<contentHash>.tar.gz`, default ~/.cache/apphost),
 * where a Release or Rollout reads it when it deploys. The program builds it
 * once per run and hands it to the components.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { localCacheDir } from "../config/defaults";
import type { AppConfig } from "../config/types";
import { buildArtifact, type ArtifactApp } from "./artifact";

/** The artifact as the components use it: where it is, and the hashes that decide a new release. */
export interface StackArtifact {
  path: string;
  contentHash: string;
  requirementsHash: string;
}

function sha256(data: Buffer): string {
  return crypto.createHash("sha256").update(data).digest("hex");
}

/**
 * The artifact in the local cache (`<cache>/<contentHash>.tar.gz`), which the
 * Release reads when it deploys. A cached file is used only when its sha256 is
 * the one just built (the build is deterministic); anything else (a truncated
 * or edited file) is replaced. Written under a name of its own, then renamed:
 * two programs building the same release at once (two stacks, parallel tests)
 * never read half a file.
 */
export function cacheArtifact(
  cacheDir: string,
  artifact: { contentHash: string; sha256: string; tarGz: Buffer },
): string {
  fs.mkdirSync(cacheDir, { recursive: true });
  const artifactPath = path.join(cacheDir, `${artifact.contentHash}.tar.gz`);
  if (fs.existsSync(artifactPath) && sha256(fs.readFileSync(artifactPath)) === artifact.sha256)
    return artifactPath;
  const partial = `${artifactPath}.${process.pid}.partial`;
  fs.writeFileSync(partial, artifact.tarGz);
  fs.renameSync(partial, artifactPath);
  return artifactPath;
}

/**
 * The artifact of the stack's app, built from apphost:app.source and kept in
 * the local cache, where a Release or Rollout reads it.
 * @param app apphost:app: the source directory (relative to `projectDir`), and
 *   what decides the artifact's content: the runtime, its requirements or uv
 *   project, the excludes, and the build (releaseContentHash)
 * @param projectDir the Pulumi project's directory
 */
export function stackArtifact(
  app: ArtifactApp & Pick<AppConfig, "source">,
  projectDir: string,
): StackArtifact {
  const source = path.resolve(projectDir, app.source);
  if (!fs.existsSync(source)) {
    throw new Error(
      `apphost:app.source: "${app.source}" does not exist (resolved to ${source}); point it at the app directory`,
    );
  }
  const artifact = buildArtifact(source, app);
  const cacheDir = path.join(localCacheDir(), "artifacts");
  return {
    path: cacheArtifact(cacheDir, artifact),
    contentHash: artifact.contentHash,
    requirementsHash: artifact.requirementsHash,
  };
}
