# Test kit: SIGKILL ansible-playbook when a named task is about to start, as an operator's Ctrl-\ or a
# dead control node would - no handler, no `always`, no rescue runs. Enabled by internal/playbook
# (Run.KillAt) through ANSIBLE_CALLBACKS_ENABLED; never shipped in the collection.
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import signal

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
    name: killat
    type: aggregate
    short_description: kill ansible-playbook at the start of a named task (test kit)
    description:
      - ETCDOPS_KILL_AT names the task as the json callback reports it (with the role's name for a role's
        task), ETCDOPS_KILL_AT_NTH its occurrence (default 1), ETCDOPS_KILL_MARK a file written just
        before the kill, so the runner can tell a kill from a crash.
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'killat'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.target = os.environ.get('ETCDOPS_KILL_AT', '')
        self.left = int(os.environ.get('ETCDOPS_KILL_AT_NTH', '1') or '1')
        self.mark = os.environ.get('ETCDOPS_KILL_MARK', '')

    def v2_playbook_on_task_start(self, task, is_conditional):
        if not self.target or task.get_name() != self.target:
            return
        self.left -= 1
        if self.left > 0:
            return
        if self.mark:
            with open(self.mark, 'w') as f:
                f.write(self.target + '\n')
        os.kill(os.getpid(), signal.SIGKILL)
