# Progress for a person waiting on a playbook whose stdout is the JSON report (labctl demo): one line per
# play and task as it starts, and each failure, written to stderr at once. Enabled by internal/playbook
# (Run.Progress) through ANSIBLE_CALLBACKS_ENABLED; never shipped in the collection.
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import sys
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
    name: progress
    type: aggregate
    short_description: one stderr line per play, task start and failure (lab kit)
    description:
      - Lets a caller that reads the JSON report from stdout show what the playbook is doing while it runs.
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'progress'
    CALLBACK_NEEDS_ENABLED = True

    def _line(self, text):
        sys.stderr.write('%s %s\n' % (time.strftime('%H:%M:%S'), text))
        sys.stderr.flush()

    def v2_playbook_on_play_start(self, play):
        self._line('PLAY  %s' % play.get_name())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._line('TASK  %s' % task.get_name())

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._line('FAIL  %s: %s' % (result._host.get_name(), result._result.get('msg', '')))

    def v2_runner_on_unreachable(self, result):
        self._line('UNREACHABLE  %s: %s' % (result._host.get_name(), result._result.get('msg', '')))
