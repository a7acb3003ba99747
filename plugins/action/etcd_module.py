# -*- coding: utf-8 -*-
# The action of every etcdops.etcd module (meta/runtime.yml names it as each module's action_plugin): the
# collection's one executable is copied to a host once per version and run from the host's cache by
# etcd_exec, instead of Ansible copying a ~20 MB binary on every task (docs/speed.md).
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import shlex

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.unsafe_proxy import wrap_var
from ansible.vars.clean import remove_internal_keys
from ansible.utils.vars import merge_hash

_PASSWORD_ENV = 'ETCDCTL_PASSWORD'

# A host's `uname -m` -> the Go architecture of the executable it runs (bin/linux_<arch>/etcdops).
GOARCH = {'x86_64': 'amd64', 'aarch64': 'arm64', 'ppc64le': 'ppc64le', 's390x': 's390x'}


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for b in iter(lambda: f.read(1 << 20), b''):
            h.update(b)
    return h.hexdigest()


def _sha256(path):
    """The executable's sha256, from the digest `make build` wrote beside it (PATH.digest).

    Ansible runs every task in a freshly forked worker, so nothing computed here outlives the task:
    hashing the ~20 MB executable cost every task 20-100 ms. The digest file is trusted only if it
    describes this file: same size, and its Go build ID (a hash of the linked output, in the first
    page) at the head of the file; else the file is hashed and a digest that disagrees is an error.
    The host verifies the copy it runs against this digest in any case.
    """
    try:
        with open(path + '.digest') as f:
            recorded = json.load(f)
    except (IOError, OSError, ValueError):
        recorded = None
    if recorded:
        with open(path, 'rb') as f:
            head = f.read(1 << 16)
            size = os.fstat(f.fileno()).st_size
        if size == recorded.get('size') and recorded.get('go_build_id', '').encode('ascii') in head:
            return recorded['sha256']
    got = _sha256_file(path)
    if recorded and got != recorded.get('sha256'):
        raise AnsibleError('%s.digest does not describe %s (rebuilt without make build?): run make build, '
                           'or install the collection again' % (path, path))
    return got


def executables(bindir):
    """{uname -m: (path, sha256)} for every bin/linux_<arch>/etcdops the collection holds."""
    found = {}
    for machine, goarch in GOARCH.items():
        path = os.path.join(bindir, 'linux_' + goarch, 'etcdops')
        if os.path.isfile(path):
            found[machine] = (path, _sha256(path))
    return found


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


class ActionModule(ActionBase):

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True  # each module handles check mode itself, as before
        self._supports_async = True
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        if result.get('skipped'):
            return result
        if result.get('invocation', {}).get('module_args'):
            del result['invocation']['module_args']

        if self._task.async_val and not self._connection.has_native_async:
            # async_wrapper runs one file it was given: Ansible copies the executable as for any binary module.
            return merge_hash(result, self._execute_module(module_args=self._module_args(), task_vars=task_vars, wrap_async=True))
        if not boolean(self._templar.template(self._host_var(task_vars, 'etcd_module_cache', True)), strict=False):
            # Set where there is no Python to run etcd_exec, this saves the failed attempt below on each task.
            return merge_hash(result, self._execute_module(module_args=self._module_args(), task_vars=task_vars))
        try:
            res = self._run_cached(task_vars)
            if res.get('failed') and res.get('rc') == 127 and 'etcdops_cache_miss' not in res:
                # No Python on the host (CoreOS Container Linux, hosted etcd's pods) to run etcd_exec: the
                # executable is copied for each task there, as a binary module needs no interpreter.
                res = self._execute_module(module_args=self._module_args(), task_vars=task_vars)
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

    def _run_cached(self, task_vars):
        # The task's module: its file (a link to the executable) and its full name.
        found = self._shared_loader_obj.module_loader.find_plugin_with_context(
            self._task.action, collection_list=self._task.collections)
        if not found.resolved:
            raise AnsibleError('module %s not found' % self._task.action)
        name = found.resolved_fqcn
        # plugins/modules/NAME links to bin/linux_<arch>/etcdops; its siblings are the other architectures'.
        exes = executables(os.path.dirname(os.path.dirname(os.path.realpath(found.plugin_resolved_path))))
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
        self._transfer_file(exes[machine][0], remote)
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
