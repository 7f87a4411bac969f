/**
 * The Python tools apphost installs on a host from PyPI, once, into
 * `<HOST_TOOLS_DIR>/<tool>-<version>` (python.ts `toolInstallCommand`), with
 * their dependencies pinned too.
 *
 * A tool pinned alone still takes whatever its dependencies' newest releases
 * are on the day a host installs it, and those break tools: pdm 2.29.4 allows
 * `hishel>=1.4` and fails at its first command with hishel 2.0.0
 * (`module 'hishel' has no attribute 'SyncSqliteStorage'`). So each tool
 * installs with the dependency versions it was tested with: `pip freeze` of a
 * fresh venv on Python 3.11 (Debian 12's) after `pip install <tool>==<version>`,
 * without pip, the venv's own setuptools and the tool itself. A dependency
 * another Python needs that is not listed still resolves; one listed that
 * another Python does not need is installed anyway, unused.
 *
 * To move a tool on: change its version, rebuild the list the same way, run
 * the unit suite and the apps end-to-end spec (which installs each tool on a
 * real host).
 */

/** uv from PyPI (a binary wheel, no dependencies). */
export const UV_VERSION = "0.13.9";
/** Poetry from PyPI. */
export const POETRY_VERSION = "2.5.1";
/** Pipenv from PyPI. */
export const PIPENV_VERSION = "2026.10.3";
/** PDM from PyPI. */
export const PDM_VERSION = "2.29.4";

/** The tools apphost installs from PyPI, and their pinned versions. */
export const PYTHON_TOOL_VERSION = {
  uv: UV_VERSION,
  poetry: POETRY_VERSION,
  pipenv: PIPENV_VERSION,
  pdm: PDM_VERSION,
} as const;
export type PythonTool = keyof typeof PYTHON_TOOL_VERSION;

/** Each tool's dependencies, `name==version`, as installed with it (above). */
export const PYTHON_TOOL_DEPS: Record<PythonTool, readonly string[]> = {
  uv: [],
  poetry: words(
    "anyio==4.16.0 backports.tarfile==1.2.0 backports.zstd==1.8.0 build==1.6.1 CacheControl==0.14.4 " +
      "certifi==2026.10.19.post1 cffi==2.1.1 charset-normalizer==3.5.3 cleo==2.1.0 crashtest==0.4.1 " +
      "cryptography==50.0.2 distlib==0.4.4 dulwich==1.2.21 fastjsonschema==2.22.3 filelock==4.3.2 " +
      "findpython==0.8.0 h11==0.16.0 httpcore2==2.16.2 httpx2==2.16.2 idna==3.20 importlib_metadata==10.2.0 " +
      "installer==1.1.0 jaraco.classes==3.4.0 jaraco.context==6.1.2 jaraco.functools==4.6.0 jeepney==0.9.0 " +
      "keyring==25.7.0 lazy-importer==0.1.0 more-itertools==11.2.1 msgpack==1.2.4 packaging==26.4 " +
      "pbs-installer==2026.10.25 pkginfo==1.13.3 platformdirs==4.14.9 poetry-core==2.5.0 pycparser==3.12 " +
      "pyproject_hooks==1.3.3 python-discovery==1.9.9 RapidFuzz==3.14.6 requests==2.34.2 " +
      "requests-toolbelt==1.0.0 SecretStorage==3.5.0 shellingham==1.5.4 tomlkit==0.15.3 " +
      "trove-classifiers==2026.9.21.13 truststore==0.10.5 typing_extensions==4.16.0 urllib3==2.8.0 " +
      "virtualenv==21.15.14 zipp==4.1.2",
  ),
  pipenv: words(
    "certifi==2026.10.19.post1 distlib==0.4.4 filelock==4.3.2 packaging==26.4 platformdirs==4.14.9 " +
      "python-discovery==1.9.9 setuptools==84.2.1 virtualenv==21.15.14",
  ),
  pdm: words(
    "anyio==4.16.0 anysqlite==0.0.5 argcomplete==3.7.2 blinker==1.9.0 certifi==2026.10.19.post1 " +
      "dep-logic==0.7.2 distlib==0.4.4 filelock==4.3.2 findpython==0.9.0 h11==0.16.0 hishel==1.4.0 " +
      "httpcore==1.0.9 httpcore2==2.16.2 httpx==0.29.0 httpx2==2.16.2 id==1.6.1 idna==3.20 installer==1.1.0 " +
      "markdown-it-py==4.3.0 mdurl==0.1.2 msgpack==1.2.4 packaging==26.4 pbs-installer==2026.10.25 " +
      "platformdirs==4.14.9 Pygments==2.21.0 pyproject_hooks==1.3.3 python-discovery==1.9.9 " +
      "python-dotenv==1.2.4 resolvelib==1.2.1 rich==15.0.0 shellingham==1.5.4 socksio==1.0.0 " +
      "tomlkit==0.15.3 truststore==0.10.5 typing_extensions==4.16.0 unearth==0.19.0 urllib3==2.8.0 " +
      "virtualenv==21.15.14",
  ),
};

function words(s: string): string[] {
  return s.split(" ");
}
