"""Access refused at the probe-context boundary: the probes get the AccessDenied / 403 errors boto3 and the
kubernetes client raise, translated by the same functions (probes/context.py) as in production."""

from __future__ import annotations

import json

from ppdoctor.probes.context import AWS_ACTIONS, ProbeContext, aws_error, kube_error

USER = "arn:aws:iam::123456789012:user/oncall"
SA = "system:serviceaccount:default:ppdoctor"


class DeniedContext(ProbeContext):
    def __init__(self, config, *, aws: bool = False, kube: bool = False) -> None:
        super().__init__(config)
        self.deny_aws, self.deny_kube = aws, kube

    def aws_call(self, service, operation, **kwargs):
        if self.deny_aws:
            from botocore.exceptions import ClientError

            action = AWS_ACTIONS.get(operation, operation)
            exc = ClientError({"Error": {"Code": "AccessDenied",
                                         "Message": f"User: {USER} is not authorized to perform: {action}"}}, operation)
            raise aws_error(exc, operation) from exc
        return super().aws_call(service, operation, **kwargs)

    def kube_call(self, api, method, verb, resource, where=None, **kwargs):
        if self.deny_kube:
            from kubernetes.client.exceptions import ApiException

            exc = ApiException(status=403, reason="Forbidden")
            exc.body = json.dumps({"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
                                   "message": f'{resource} is forbidden: User "{SA}" cannot {verb} resource "{resource}"'})
            raise kube_error(exc, verb, resource, where) from exc
        return super().kube_call(api, method, verb, resource, where, **kwargs)
