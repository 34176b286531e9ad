"""An unmodified azure-mgmt-batchai 7.0.0 client drives every resource type through the local host."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.batchai import BatchAI
from azure.mgmt.batchai import models as m

USER = m.UserAccountSettings(admin_user_name="scientist", admin_user_password="Pa55-secret-word")
LOGS = "$AZ_BATCHAI_MOUNT_ROOT/logs"


@pytest.fixture
def rg() -> str:
    """A resource group of its own per test, so tests never see each other's resources."""
    return f"rg-{uuid.uuid4().hex[:8]}"


def make_workspace(sdk: BatchAI, rg: str, name: str = "ws") -> m.Workspace:
    return sdk.workspaces.begin_create(rg, name, m.WorkspaceCreateParameters(location="eastus")).result()


def make_cluster(sdk: BatchAI, rg: str, ws: str = "ws", name: str = "gpu", nodes: int = 2) -> m.Cluster:
    params = m.ClusterCreateParameters(
        vm_size="STANDARD_NC6", user_account_settings=USER,
        scale_settings=m.ScaleSettings(manual=m.ManualScaleSettings(target_node_count=nodes)))
    return sdk.clusters.begin_create(rg, ws, name, params).result()


def job_params(cluster_id: str, **toolkit: Any) -> m.JobCreateParameters:
    return m.JobCreateParameters(cluster=m.ResourceId(id=cluster_id), node_count=2,
                                 std_out_err_path_prefix=LOGS, **toolkit)


def test_workspace_create_get_update_list_delete(sdk: BatchAI, rg: str) -> None:
    created = sdk.workspaces.begin_create(
        rg, "ws", m.WorkspaceCreateParameters(location="westus2", tags={"team": "vision"})).result()
    assert created.provisioning_state == "succeeded"
    assert created.creation_time is not None and created.location == "westus2"
    assert sdk.workspaces.get(rg, "ws").tags == {"team": "vision"}

    updated = sdk.workspaces.update(rg, "ws", m.WorkspaceUpdateParameters(tags={"team": "speech"}))
    assert updated.tags == {"team": "speech"}
    assert [w.name for w in sdk.workspaces.list_by_resource_group(rg)] == ["ws"]
    assert "ws" in {w.name for w in sdk.workspaces.list()}

    sdk.workspaces.begin_delete(rg, "ws").result()
    with pytest.raises(ResourceNotFoundError):
        sdk.workspaces.get(rg, "ws")


def test_cluster_create_get_update_list_delete(sdk: BatchAI, rg: str) -> None:
    make_workspace(sdk, rg)
    cluster = make_cluster(sdk, rg, nodes=2)
    assert cluster.vm_priority == "dedicated" and cluster.allocation_state == "steady"
    assert cluster.scale_settings.manual.node_deallocation_option == "requeue"
    assert cluster.user_account_settings.admin_user_password is None  # secrets are never returned
    assert cluster.node_state_counts.idle_node_count == 0

    auto = m.ScaleSettings(auto_scale=m.AutoScaleSettings(minimum_node_count=0, maximum_node_count=4))
    updated = sdk.clusters.update(rg, "ws", "gpu", m.ClusterUpdateParameters(scale_settings=auto))
    assert updated.scale_settings.manual is None
    assert updated.scale_settings.auto_scale.maximum_node_count == 4
    assert sdk.clusters.get(rg, "ws", "gpu").scale_settings.auto_scale.initial_node_count == 0
    assert [c.name for c in sdk.clusters.list_by_workspace(rg, "ws")] == ["gpu"]
    logins = list(sdk.clusters.list_remote_login_information(rg, "ws", "gpu"))  # nodes still come and go
    assert all(n.ip_address.startswith("127.0.0.") and n.port == 22 for n in logins)
    assert len({n.node_id for n in logins}) == len(logins) <= 2

    sdk.clusters.begin_delete(rg, "ws", "gpu").result()
    with pytest.raises(ResourceNotFoundError):
        sdk.clusters.get(rg, "ws", "gpu")


def test_file_server_create_get_list_delete(sdk: BatchAI, rg: str, api: httpx.Client) -> None:
    make_workspace(sdk, rg)
    params = m.FileServerCreateParameters(
        vm_size="STANDARD_D2", ssh_configuration=m.SshConfiguration(user_account_settings=USER),
        data_disks=m.DataDisks(disk_size_in_gb=10, disk_count=2, storage_account_type="Standard_LRS"))
    server = sdk.file_servers.begin_create(rg, "ws", "nfs", params).result()
    assert server.provisioning_state == "succeeded"
    assert server.mount_settings.mount_point
    assert server.ssh_configuration.user_account_settings.admin_user_password is None
    assert [f.name for f in sdk.file_servers.list_by_workspace(rg, "ws")] == ["nfs"]

    # The 7.0.0 client has no get or delete for file servers; they are plain REST calls.
    path = server.id
    assert api.get(path).json()["name"] == "nfs"
    assert api.delete(path).status_code == 200
    assert api.get(path).status_code == 404
    assert api.delete(path).status_code == 204


def test_experiment_and_job_lifecycle(sdk: BatchAI, rg: str) -> None:
    make_workspace(sdk, rg)
    cluster = make_cluster(sdk, rg)
    experiment = sdk.experiments.begin_create(rg, "ws", "exp").result()
    assert experiment.provisioning_state == "succeeded"
    assert sdk.experiments.get(rg, "ws", "exp").creation_time == experiment.creation_time
    assert [e.name for e in sdk.experiments.list_by_workspace(rg, "ws")] == ["exp"]

    params = job_params(cluster.id, custom_toolkit_settings=m.CustomToolkitSettings(command_line="echo hi"),
                        secrets=[m.EnvironmentVariableWithSecretValue(name="TOKEN", value="hush")])
    job = sdk.jobs.begin_create(rg, "ws", "exp", "job1", params).result()
    assert job.execution_state == "queued" and job.tool_type == "custom"
    assert job.scheduling_priority == "normal"
    assert job.constraints.max_wall_clock_time.days == 7
    assert job.secrets[0].name == "TOKEN" and job.secrets[0].value is None
    assert job.job_output_directory_path_segment.endswith(tuple("0123456789abcdef"))

    again = sdk.jobs.begin_create(rg, "ws", "exp", "job2", params).result()
    assert again.job_output_directory_path_segment != job.job_output_directory_path_segment
    assert [j.name for j in sdk.jobs.list_by_experiment(rg, "ws", "exp")] == ["job1", "job2"]
    assert list(sdk.jobs.list_output_files(rg, "ws", "exp", "job1", m.JobsListOutputFilesOptions(
        outputdirectoryid="stdouterr"))) == []
    assert list(sdk.jobs.list_remote_login_information(rg, "ws", "exp", "job1")) == []

    sdk.jobs.begin_terminate(rg, "ws", "exp", "job1").result()
    terminated = sdk.jobs.get(rg, "ws", "exp", "job1")
    assert terminated.execution_state == "failed"
    assert terminated.execution_info.errors[0].code == "JobTerminated"

    sdk.jobs.begin_delete(rg, "ws", "exp", "job1").result()
    assert [j.name for j in sdk.jobs.list_by_experiment(rg, "ws", "exp")] == ["job2"]
    sdk.experiments.begin_delete(rg, "ws", "exp").result()
    with pytest.raises(ResourceNotFoundError):
        sdk.jobs.get(rg, "ws", "exp", "job2")


TOOLKITS: dict[str, tuple[str, Any]] = {
    "cntk": ("cntk_settings", m.CNTKsettings(language_type="BrainScript", config_file_path="cfg.cntk")),
    "pytorch": ("py_torch_settings", m.PyTorchSettings(python_script_file_path="train.py",
                                                      communication_backend="Gloo")),
    "tensorflow": ("tensor_flow_settings", m.TensorFlowSettings(python_script_file_path="tf.py", worker_count=2,
                                                               parameter_server_count=1)),
    "caffe": ("caffe_settings", m.CaffeSettings(config_file_path="solver.prototxt")),
    "caffe2": ("caffe2_settings", m.Caffe2Settings(python_script_file_path="c2.py")),
    "chainer": ("chainer_settings", m.ChainerSettings(python_script_file_path="chainer.py")),
    "custom": ("custom_toolkit_settings", m.CustomToolkitSettings(command_line="hostname")),
    "mpi": ("custom_mpi_settings", m.CustomMpiSettings(command_line="hostname", process_count=4)),
    "horovod": ("horovod_settings", m.HorovodSettings(python_script_file_path="hvd.py")),
}


def test_a_job_with_each_of_the_nine_toolkits(sdk: BatchAI, rg: str) -> None:
    make_workspace(sdk, rg)
    cluster = make_cluster(sdk, rg)
    sdk.experiments.begin_create(rg, "ws", "toolkits").result()
    for tool_type, (attribute, settings) in TOOLKITS.items():
        job = sdk.jobs.begin_create(rg, "ws", "toolkits", tool_type,
                                    job_params(cluster.id, **{attribute: settings})).result()
        assert job.tool_type == tool_type
        fetched = sdk.jobs.get(rg, "ws", "toolkits", tool_type)
        expected = settings.as_dict()
        if "process_count" in type(settings)._attribute_map:
            expected.setdefault("process_count", 2)  # reported as the job's nodeCount, as the service did
        assert getattr(fetched, attribute).as_dict() == expected
    assert sorted(j.tool_type for j in sdk.jobs.list_by_experiment(rg, "ws", "toolkits")) == sorted(TOOLKITS)


def test_the_recipe_notebooks_job_settings_are_accepted_and_echoed(sdk: BatchAI, rg: str) -> None:
    """The calls of Azure/BatchAI's notebooks (recipes/PyTorch/PyTorch-GPU-Distributed-Gloo,
    CNTK/CNTK-GPU-Python-Distributed, Keras/Keras-GPU with the CNTK backend), as written there."""
    make_workspace(sdk, rg)
    cluster = make_cluster(sdk, rg)
    sdk.experiments.begin_create(rg, "ws", "notebooks").result()
    afs = "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs"

    def create(name: str, node_count: int, **toolkit: Any) -> m.Job:
        params = m.JobCreateParameters(location="eastus", cluster=m.ResourceId(id=cluster.id), node_count=node_count,
                                       std_out_err_path_prefix=afs, **toolkit)
        sdk.jobs.begin_create(rg, "ws", "notebooks", name, params).result()
        return sdk.jobs.get(rg, "ws", "notebooks", name)

    pytorch = create("pytorch", 2, py_torch_settings=m.PyTorchSettings(
        python_script_file_path=f"{afs}/pytorch_samples/mnist_trainer.py",
        command_line_args="--epochs 10 --world-size 2 --dist-backend gloo --dist-url $AZ_BATCHAI_PYTORCH_INIT_METHOD "
                          "--rank $AZ_BATCHAI_TASK_INDEX",
        communication_backend="gloo"))
    assert pytorch.tool_type == "pytorch"
    assert pytorch.py_torch_settings.communication_backend == "gloo" and pytorch.py_torch_settings.process_count == 2

    cntk = create("cntk", 2, cntk_settings=m.CNTKsettings(
        language_type="python", python_script_file_path=f"{afs}/ConvNet_CIFAR10_DataAug_Distributed.py",
        command_line_args="--datadir $AZ_BATCHAI_JOB_TEMP --outputdir $AZ_BATCHAI_OUTPUT_MODEL -n 5", process_count=2))
    assert cntk.cntk_settings.language_type == "python" and cntk.cntk_settings.process_count == 2

    keras = create("keras", 1, cntk_settings=m.CNTKsettings(python_script_file_path=f"{afs}/keras/mnist_cnn.py"))
    assert keras.cntk_settings.language_type == "Python" and keras.cntk_settings.process_count == 1


def test_listing_through_maxresults_pages(sdk: BatchAI, rg: str, api: httpx.Client) -> None:
    make_workspace(sdk, rg)
    for index in range(7):
        sdk.experiments.begin_create(rg, "ws", f"exp{index}").result()
    pages = sdk.experiments.list_by_workspace(rg, "ws", m.ExperimentsListByWorkspaceOptions(max_results=3)).by_page()
    names = [[e.name for e in page_] for page_ in pages]
    assert names == [["exp0", "exp1", "exp2"], ["exp3", "exp4", "exp5"], ["exp6"]]

    first = api.get(f"/subscriptions/{sdk._config.subscription_id}/resourceGroups/{rg}/providers/"
                     "Microsoft.BatchAI/workspaces/ws/experiments", params={"maxresults": 7}).json()
    assert len(first["value"]) == 7 and "nextLink" not in first


def test_workspace_delete_cascades_to_everything_beneath(sdk: BatchAI, rg: str) -> None:
    make_workspace(sdk, rg)
    cluster = make_cluster(sdk, rg)
    sdk.experiments.begin_create(rg, "ws", "exp").result()
    sdk.jobs.begin_create(rg, "ws", "exp", "job", job_params(
        cluster.id, custom_toolkit_settings=m.CustomToolkitSettings(command_line="true"))).result()

    sdk.workspaces.begin_delete(rg, "ws").result()
    for get in (lambda: sdk.clusters.get(rg, "ws", "gpu"), lambda: sdk.experiments.get(rg, "ws", "exp"),
                lambda: sdk.jobs.get(rg, "ws", "exp", "job")):
        with pytest.raises(ResourceNotFoundError):
            get()
    # A workspace of the same name starts empty.
    make_workspace(sdk, rg)
    assert list(sdk.clusters.list_by_workspace(rg, "ws")) == []
    assert list(sdk.experiments.list_by_workspace(rg, "ws")) == []


def test_usages_count_real_clusters(sdk: BatchAI, rg: str) -> None:
    def clusters_in_use() -> int:
        usage = {u.name.value: u for u in sdk.usages.list("eastus")}
        return usage["Clusters"].current_value

    before = clusters_in_use()
    make_workspace(sdk, rg)
    make_cluster(sdk, rg, name="a")
    make_cluster(sdk, rg, name="b")
    assert clusters_in_use() == before + 2
    assert {o.name for o in sdk.operations.list()} >= {"Microsoft.BatchAI/workspaces/clusters/write"}


def test_changing_an_immutable_property_is_a_conflict(sdk: BatchAI, rg: str) -> None:
    make_workspace(sdk, rg)
    make_cluster(sdk, rg)
    make_cluster(sdk, rg)  # the same PUT again is fine
    params = m.ClusterCreateParameters(vm_size="STANDARD_NC12", user_account_settings=USER)
    with pytest.raises(HttpResponseError) as caught:
        sdk.clusters.begin_create(rg, "ws", "gpu", params).result()
    assert caught.value.status_code == 409
    assert "vmSize" in caught.value.message


def test_setup_task_gets_its_own_output_suffix(sdk: BatchAI, rg: str) -> None:
    make_workspace(sdk, rg)
    task = m.SetupTask(command_line="apt-get install -y jq", std_out_err_path_prefix="$AZ_BATCHAI_MOUNT_ROOT/setup",
                       secrets=[m.EnvironmentVariableWithSecretValue(name="PIP_TOKEN", value="hush")])
    params = m.ClusterCreateParameters(vm_size="STANDARD_D2", user_account_settings=USER,
                                       node_setup=m.NodeSetup(setup_task=task))
    created = sdk.clusters.begin_create(rg, "ws", "a", params).result().node_setup.setup_task
    other = sdk.clusters.begin_create(rg, "ws", "b", params).result().node_setup.setup_task
    assert created.std_out_err_path_suffix and created.std_out_err_path_suffix != other.std_out_err_path_suffix
    assert "/clusters/a/" in created.std_out_err_path_suffix
    assert created.secrets[0].name == "PIP_TOKEN" and created.secrets[0].value is None
