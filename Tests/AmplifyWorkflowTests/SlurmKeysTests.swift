import AmplifyWorkflow
import Testing

/// `sessions` and `slurm` (SPEC §14): where they go, what they take, and the sbatch options they make.
@Suite("sessions: slurm — the keys")
struct SlurmKeysTests {
    @Test("settings.slurm and a dispatch's slurm: the dispatch's keys win, one by one; time rounds up to minutes")
    func accepted() throws {
        let w = try #require(check(dispatchWorkflow(
            settings: ", sessions: slurm, slurm: {partition: agents, time: 90s, cpus: 4, mem: 8G, account: team-x, extra-args: [\"--qos=long\"]}",
            with: ", sessions: local, slurm: {partition: gpu, mem: 512M}")).workflow)
        #expect(w.settings.sessions == "slurm")
        #expect(w.settings.slurm.sbatchArguments == ["--partition=agents", "--time=2", "--cpus-per-task=4", "--mem=8G", "--account=team-x", "--qos=long"])
        let dispatch = try #require(w.stage("dispatch"))
        #expect(dispatch.literal(DispatchParameters.sessions) == "local")
        let own = try #require(dispatch.literal(DispatchParameters.slurm))
        #expect(w.settings.slurm.overridden(by: own).sbatchArguments == ["--partition=gpu", "--time=2", "--cpus-per-task=4", "--mem=512M", "--account=team-x", "--qos=long"])
    }

    @Test("a value sbatch would refuse, or one that undoes the runner's own options, is an error at its line")
    func refusals() {
        expectRefused([
            (", sessions: slrum", "", "2:", "settings.sessions must be `local` or `slurm`, not 'slrum'; did you mean 'slurm'?"),
            (", slurm: {mem: 8GB}", "", "2:", "must be memory in Slurm's form"),
            (", slurm: {partition: \"-p x\"}", "", "2:", "must be a partition's name"),
            (", slurm: {cpus: 0}", "", "2:", "cpus"),
            (", slurm: {time: soon}", "", "2:", "time"),
            (", slurm: {nodes: 2}", "", "2:", "unknown key 'nodes'"),
            (", slurm: {extra-args: [\"--output=/tmp/x\"]}", "", "2:", "'--output' is set by the runner"),
            (", slurm: {extra-args: [\"--out=/tmp/x\"]}", "", "2:", "abbreviation of '--output'"),
            (", slurm: {extra-args: [\"-J\", \"x\"]}", "", "2:", "'-J' is set by the runner"),
            (", slurm: {extra-args: [qos]}", "", "2:", "is not an sbatch option"),
            ("", ", sessions: cluster", "5:", "sessions"),
            ("", ", slurm: {extra-args: [\"--export=NONE\"]}", "5:", "'--export' is set by the runner"),
        ])
    }
}
