# -*- coding: utf-8 -*-
# The action of every etcdops.etcd module (meta/runtime.yml names it as each module's action_plugin): the
# collection's one executable is copied to a host once per version and run from the host's cache by
# etcd_exec, instead of Ansible copying a ~20 MB binary on every task (docs/speed.md). The collection ships
# each architecture's executable packed (bin/linux_<arch>/etcdops.xz): the controller unpacks the ones its
# hosts need into its own cache and verifies them against their digest before sending them.
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import hashlib
import json
import lzma
import os
import re
import shlex
import shutil
import stat
import tempfile
import threading
import time

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.unsafe_proxy import wrap_var
from ansible.vars.clean import remove_internal_keys
from ansible.utils.vars import merge_hash

_PASSWORD_ENV = 'ETCDCTL_PASSWORD'

display = Display()

# A host's `uname -m` -> the Go architecture of the executable it runs (bin/linux_<arch>/etcdops).
GOARCH = {'x86_64': 'amd64', 'aarch64': 'arm64', 'ppc64le': 'ppc64le', 's390x': 's390x'}


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for b in iter(lambda: f.read(1 << 20), b''):
            h.update(b)
    return h.hexdigest()


def _recorded_sha256(packed):
    """The sha256 of the executable PACKED (etcdops.xz) unpacks to, from the digest `make build` wrote beside
    it: the host verifies its copy against it, and so does the controller after unpacking."""
    digest = os.path.join(os.path.dirname(packed), 'etcdops.digest')
    try:
        with open(digest) as f:
            sha256 = json.load(f)['sha256']
        # It names a directory here and goes into the host's shell command (_FAST): hex digits only.
        if not re.match(r'^[0-9a-f]{64}$', sha256):
            raise ValueError('not a sha256: %r' % (sha256,))
        return sha256
    except (IOError, OSError, ValueError, KeyError, TypeError) as e:
        raise AnsibleError('cannot read the sha256 of %s from %s (%s): run make build, or install the collection '
                           'again' % (packed, digest, e))


def executables(bindir):
    """{uname -m: (path of etcdops.xz, sha256 of the executable in it)} for every architecture the collection
    holds (bin/linux_<arch>/etcdops.xz). Nothing is unpacked or hashed here: a task on a host that has the
    executable cached needs only the sha256."""
    found = {}
    for machine, goarch in GOARCH.items():
        path = os.path.join(bindir, 'linux_' + goarch, 'etcdops.xz')
        if os.path.isfile(path):
            found[machine] = (path, _recorded_sha256(path))
    return found


def controller_cache():
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'etcdops-etcd', 'controller')


# Another version's executable (a collection upgraded, or another install's) is removed from the
# controller's cache once unused this long; each use marks its directory, so two installs in use side
# by side keep both.
PRUNE_AFTER = 14 * 86400
_SHA256_NAME = re.compile(r'^[0-9a-f]{64}$')


def unpacked(packed, sha256, name='etcdops'):
    """The path of the executable that PACKED holds, unpacked into the controller's cache (a directory per
    sha256, owned by this user, mode 0700) on first use and hashed before every use: a cached file that
    is not the one the digest names (changed, torn) is unpacked again, never sent. NAME: a link to it
    under another name (a binary module runs the module its file is named after)."""
    d = os.path.join(controller_cache(), sha256)
    try:
        os.makedirs(d, 0o700)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise AnsibleError('cannot create the controller cache %s: %s' % (d, e))
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise AnsibleError('the controller cache %s must be a directory owned by uid %d with mode 0700 (found uid %d, '
                           'mode %o); remove it and run again' % (d, os.geteuid(), st.st_uid, stat.S_IMODE(st.st_mode)))
    exe = os.path.join(d, 'etcdops')
    try:
        cached = _sha256_file(exe) == sha256
    except (IOError, OSError):
        cached = False
    if not cached:
        _unpack(packed, sha256, exe)
        _prune(sha256)
    os.utime(d, None)
    if name == 'etcdops':
        return exe
    path = os.path.join(d, name)
    if not (os.path.islink(path) and os.readlink(path) == 'etcdops'):
        tmp = '%s.%d' % (path, os.getpid())
        os.symlink('etcdops', tmp)
        os.rename(tmp, path)
    return path


def _prune(keep):
    base = controller_cache()
    for name in os.listdir(base):
        d = os.path.join(base, name)
        try:
            st = os.lstat(d)
            if (name != keep and _SHA256_NAME.match(name) and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
                    and time.time() - st.st_mtime > PRUNE_AFTER):
                shutil.rmtree(d)
        except OSError:
            pass  # gone already (another fork pruned it), or not ours to remove


def _unpack(packed, sha256, exe):
    # Forks of the same run may unpack at once: each into its own temporary file, verified, renamed.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(exe), prefix='.unpack-')
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, 'wb') as out:
            try:
                with lzma.open(packed) as src:
                    for b in iter(lambda: src.read(1 << 20), b''):
                        h.update(b)
                        out.write(b)
            except (lzma.LZMAError, EOFError) as e:
                raise AnsibleError('%s cannot be unpacked (%s): install the collection again' % (packed, e))
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != sha256:
            raise AnsibleError('%s unpacks to an executable with sha256 %s, not the %s its etcdops.digest records: '
                               'run make build, or install the collection again' % (packed, h.hexdigest(), sha256))
        os.chmod(tmp, 0o700)
        os.rename(tmp, exe)
    except BaseException:
        os.unlink(tmp)
        raise


def no_executable_msg(machine, found):
    goarch = GOARCH.get(machine)
    shipped = ', '.join(sorted('linux/' + GOARCH[m] for m in found)) or 'none'
    if goarch is None:
        return ('this host\'s architecture %s (uname -m) is not one the collection builds for (%s); '
                'the collection holds executables for %s' % (machine, ', '.join(sorted(GOARCH)), shipped))
    return ('this host\'s architecture is %s (linux/%s): the collection has no executable for it (it holds %s); '
            'build it with make collection BUILD_ARCHES="... %s"' % (machine, goarch, shipped, goarch))


# Runs the cached executable with no Python on the host, in one shell command: the digest of the host's
# architecture, the cache directory as etcd_exec makes it (owned by this user, mode 0700), the cached file
# opened once and verified through that open file, which then runs. Anything unusual prints the miss
# marker and etcd_exec takes over (it installs, verifies again and names problems). The open is a
# `command exec` in braces: a plain `exec` whose redirection fails (no file of this version yet, as after
# an upgrade) ends a non-interactive shell before `|| miss`, and its `2>/dev/null` would outlast the open.
_MISS = 'etcdops-cache-miss'
_FAST = r'''miss() { echo %(miss)s; exit 0; }
case $(uname -m) in %(cases)s *) miss;; esac
if [ "$(id -u)" = 0 ]; then d=/var/cache/etcdops-etcd; else d="$HOME/.cache/etcdops-etcd"; fi
[ -d "$d" ] && [ ! -h "$d" ] && [ "$(stat -c %%u:%%a "$d" 2>/dev/null)" = "$(id -u):700" ] || miss
{ command exec 3<"$d/etcdops-$s"; } 2>/dev/null || miss
echo "$s  /proc/self/fd/3" | sha256sum -c --status 2>/dev/null || miss
%(env)sexec /proc/self/fd/3 %(module)s /dev/stdin'''


# How often a module task that is still running says so (host variable etcd_module_heartbeat; 0: never),
# and at most (a day: beyond threading's timeout limit a wait fails).
HEARTBEAT_SECONDS = 15
HEARTBEAT_MAX = 86400


class heartbeat(object):
    """While a module task runs (a copy, a backup, a learner catching up), a line on stderr every SECONDS
    naming the task, its host and how long it has run, as Ansible's polls of an async task would. Not
    async itself: its module would run on, detached on the host, after ansible-playbook were killed."""

    def __init__(self, seconds, task, host):
        self.seconds, self.task, self.host = seconds, task, host
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.seconds > 0:
            self._thread = threading.Thread(target=self._beat)
            self._thread.daemon = True
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def _beat(self):
        start = time.monotonic()
        try:
            while not self._stop.wait(self.seconds):
                # stderr: stdout may be a callback's JSON.
                display.display('STILL RUNNING on %s after %d s: %s' % (self.host, time.monotonic() - start,
                                                                         self.task), stderr=True)
        except Exception:
            # Never a traceback: in a worker, Python's write of it to stderr would wait for good on the lock
            # the worker's main thread holds. The task goes on without its lines.
            return


class ActionModule(ActionBase):

    _binary = None  # the unpacked executable Ansible copies as this task's binary module (_execute_binary)

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True  # each module handles check mode itself, as before
        self._supports_async = True
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        if result.get('skipped'):
            return result
        if result.get('invocation', {}).get('module_args'):
            del result['invocation']['module_args']

        seconds = self._heartbeat_seconds(task_vars)
        if self._task.async_val and not self._connection.has_native_async:
            # async_wrapper runs one file it was given: Ansible copies the executable as for any binary module.
            return merge_hash(result, self._execute_binary(task_vars, wrap_async=True))
        host = task_vars.get('inventory_hostname')
        if self._task.delegate_to:
            host = '%s -> %s' % (host, self._task.delegate_to)  # as Ansible names a delegated task's host
        with heartbeat(seconds, self._task.get_name(), host):
            return self._run_sync(result, task_vars)

    def _heartbeat_seconds(self, task_vars):
        value = self._templar.template(self._host_var(task_vars, 'etcd_module_heartbeat', HEARTBEAT_SECONDS))
        # Whole seconds, as a number or digits: not a boolean (yes/true would be 1), a float or "inf".
        if isinstance(value, str) and re.match(r'^[0-9]+$', value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= HEARTBEAT_MAX:
            raise AnsibleError('etcd_module_heartbeat is %r: give the whole seconds between the lines a module task '
                               'prints while it runs, 1 to %d (default %d), or 0 for none'
                               % (value, HEARTBEAT_MAX, HEARTBEAT_SECONDS))
        return value

    def _run_sync(self, result, task_vars):
        if not boolean(self._templar.template(self._host_var(task_vars, 'etcd_module_cache', True)), strict=False):
            # Set where there is no Python to run etcd_exec, this saves the failed attempt below on each task.
            return merge_hash(result, self._execute_binary(task_vars))
        try:
            res = self._run_cached(task_vars)
            if res.get('failed') and res.get('rc') == 127 and 'etcdops_cache_miss' not in res:
                # No Python on the host (CoreOS Container Linux, hosted etcd's pods) to run etcd_exec: the
                # executable is copied for each task there, as a binary module needs no interpreter.
                res = self._execute_binary(task_vars)
            result = merge_hash(result, res)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _host_var(self, task_vars, name, default):
        # A delegated task runs on the delegated host: its own variables decide.
        if self._task.delegate_to:
            delegated = task_vars.get('ansible_delegated_vars', {}).get(self._task.delegate_to, {})
            if name in delegated:
                return delegated[name]
        return task_vars.get(name, default)

    def _module(self):
        """The task's module: its full name, and the executables of the collection that holds it."""
        found = self._shared_loader_obj.module_loader.find_plugin_with_context(
            self._task.action, collection_list=self._task.collections)
        if not found.resolved:
            raise AnsibleError('module %s not found' % self._task.action)
        # plugins/modules/NAME: the collection's bin/ is two directories up.
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(found.plugin_resolved_path))))
        return found.resolved_fqcn, executables(os.path.join(root, 'bin'))

    def _execute_binary(self, task_vars, wrap_async=False):
        """Ansible copies the module to the host for this task as a binary module: the executable for the
        host's architecture, unpacked on the controller, under the module's name (_configure_module)."""
        name, exes = self._module()
        res = self._low_level_execute_command('uname -m')
        machine = res.get('stdout', '').strip()
        if res.get('rc') != 0 or not machine:
            raise AnsibleError('cannot learn this host\'s architecture (uname -m): rc %s, %s'
                               % (res.get('rc'), res.get('stderr', '').strip()))
        if machine not in exes:
            return {'failed': True, 'changed': False, 'msg': no_executable_msg(machine, exes)}
        self._binary = unpacked(exes[machine][0], exes[machine][1], name.split('.')[-1])
        return self._execute_module(module_args=self._module_args(), task_vars=task_vars, wrap_async=wrap_async)

    def _configure_module(self, module_name, module_args, task_vars):
        # plugins/modules/NAME is a stand-in (the executables ship packed): a binary module is the file
        # _execute_binary unpacked. Any other module (etcd_exec, async_wrapper) as Ansible finds it.
        if module_name == self._task.action and self._binary:
            return ('binary', None, None, self._binary)
        return super(ActionModule, self)._configure_module(module_name, module_args, task_vars)

    def _run_cached(self, task_vars):
        name, exes = self._module()
        # The host picks its architecture's digest itself: no round trip to learn it.
        ctl = {'name': self._task.action, 'module': name.split('.')[-1],
               'sha256': dict((machine, exe[1]) for machine, exe in exes.items())}
        res = self._exec_cached_sh(ctl, task_vars)
        if res is not None:
            return res
        res = self._exec(ctl, task_vars)
        if 'etcdops_cache_miss' not in res:
            return res
        machine = res.get('etcdops_machine')
        if res['etcdops_cache_miss'] == 'no_executable':
            return {'failed': True, 'changed': False, 'msg': no_executable_msg(machine, exes)}
        # First run of this version on the host (or its cached copy changed): copy it, then run.
        if self._connection._shell.tmpdir is None:
            self._make_tmp_path()
        remote = self._connection._shell.join_path(self._connection._shell.tmpdir, 'etcdops')
        self._transfer_file(unpacked(*exes[machine]), remote)
        self._fixup_perms2((self._connection._shell.tmpdir, remote), execute=False)
        ctl['src'] = remote
        res = self._exec(ctl, task_vars)
        if 'etcdops_cache_miss' in res:
            raise AnsibleError('the cached executable for %s on this host changed while it was installed' % name)
        return res

    def _task_environment(self):
        env = {}
        super(ActionModule, self)._compute_environment_string(env)
        return env

    def _compute_environment_string(self, raw_environment_out=None):
        # ETCDCTL_PASSWORD given through `environment:` would be written into the remote command line (ps,
        # -vvv): it is left out of it here and handed to the module as its password argument (_module_args).
        env = self._task_environment()
        env.pop(_PASSWORD_ENV, None)
        if isinstance(raw_environment_out, dict):
            raw_environment_out.clear()
            raw_environment_out.update(env)
        return self._connection._shell.env_prefix(**env)

    def _module_args(self):
        args = dict(self._task.args)
        env_password = self._task_environment().get(_PASSWORD_ENV)
        if env_password and not args.get('password'):
            args['password'] = env_password
        return args

    def _exec_cached_sh(self, ctl, task_vars):
        """The module's result from the host's cache without Python (ping costs a Python start; this does
        not), or None on a miss or where the arguments cannot go through stdin (su, no pipe)."""
        if not self._connection.has_pipelining or (self._connection.become and self._connection.become.name == 'su'):
            return None
        args = self._module_args()
        self._update_module_args(self._task.action, args, task_vars)
        env = self._compute_environment_string()
        cmd = _FAST % {
            'miss': _MISS, 'module': shlex.quote(ctl['module']),
            'cases': ' '.join('%s) s=%s;;' % (m, sha) for m, sha in sorted(ctl['sha256'].items())),
            'env': 'export %s; ' % env.strip() if env.strip() else ''}
        res = self._low_level_execute_command(cmd, in_data=json.dumps(args).encode('utf-8'))
        if res.get('stdout', '').strip() == _MISS:
            return None
        # As _execute_module treats what a module prints.
        data = self._parse_returned_data(res)
        remove_internal_keys(data)
        return wrap_var(data)

    def _exec(self, ctl, task_vars):
        args = self._module_args()
        args['_etcdops'] = ctl
        # Without pipelining Ansible writes the module with its arguments into the host's remote tmp, where
        # a run killed meanwhile leaves it: a password goes through the pipe instead, for this task only.
        forced = bool(args.get('password')) and not self._is_pipelining_enabled('new')
        if forced:
            try:
                previous = self._connection.get_option('pipelining')
            except (KeyError, AttributeError, ValueError):  # as in ActionBase._is_pipelining_enabled
                previous = self._play_context.pipelining
            self._connection.set_option('pipelining', True)
        try:
            if forced and not self._is_pipelining_enabled('new'):
                raise AnsibleError('the password would be written into a file on the host: this connection '
                                   'cannot pipeline (become_method su?); use another become method or client '
                                   'certificates instead of user and password')
            return self._execute_module(module_name='etcdops.etcd.etcd_exec', module_args=args, task_vars=task_vars)
        finally:
            if forced:
                self._connection.set_option('pipelining', previous)
