//! The run's report, as JSON (every figure) and as markdown (for people and docs/BENCHMARKS.md).

use crate::scenarios::ScenarioReport;
use std::fmt::Write;

pub fn markdown(reports: &[ScenarioReport]) -> String {
    let mut md = String::from("# Chaos run\n\n");
    md.push_str("| scenario | passed | requests | uploads (lost) | jobs (lost) | two results | adopted | failover | adoption | surviving success |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for r in reports {
        let v = &r.verdict;
        let requests: usize = r.attempts_by_region.values().map(|s| s.attempts).sum();
        let secs = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("{s:.1} s"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} ({}) | {} ({}) | {} | {} | {} | {} | {} |",
            r.name,
            if r.passed { "yes" } else { "**no**" },
            requests,
            v.uploads_acknowledged,
            v.uploads_lost.len(),
            v.jobs_acknowledged,
            v.jobs_lost.len(),
            v.jobs_two_results.len() + v.webhook_conflicts.len(),
            v.jobs_adopted,
            secs(r.failover_s),
            secs(r.adoption_s),
            r.surviving_success_ratio
                .map_or("-".to_owned(), |x| format!("{:.2}%", x * 100.0)),
        );
    }
    for r in reports {
        let _ = writeln!(
            md,
            "\n## {}\n\n{} at {:.1} s of a {:.1} s run; {} node(s) per region, grace {:.0} s.\n",
            r.name, r.fault, r.fault_at_s, r.duration_s, r.nodes_per_region, r.grace_s
        );
        md.push_str(
            "| region | attempts | answered | calls given up (its clients) |\n|---|---|---|---|\n",
        );
        for (region, served) in &r.attempts_by_region {
            let failed = r.calls_failed_by_region.get(region).copied().unwrap_or(0);
            let _ = writeln!(
                md,
                "| {region} | {} | {} | {failed} |",
                served.attempts, served.ok
            );
        }
        if let Some((before, during)) = r.wan_rtt_ms {
            let _ = writeln!(
                md,
                "\nRound trip between two regions: {before} ms before, {during} ms during."
            );
        }
        md.push_str("\n| check | ok | detail |\n|---|---|---|\n");
        for c in &r.checks {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                c.name,
                if c.ok { "yes" } else { "**no**" },
                c.detail
            );
        }
        let v = &r.verdict;
        let problems = [
            ("uploads lost", &v.uploads_lost),
            ("jobs lost", &v.jobs_lost),
            ("jobs with two results", &v.jobs_two_results),
            ("jobs announced with two outcomes", &v.webhook_conflicts),
            ("links broken", &v.links_broken),
        ];
        for (what, items) in problems.iter().filter(|(_, items)| !items.is_empty()) {
            let _ = writeln!(md, "\n{what}:\n");
            for item in items.iter() {
                let _ = writeln!(md, "- {item}");
            }
        }
    }
    md
}
