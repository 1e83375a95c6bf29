//! The command line's parsing and the operator commands over stub data.

use super::*;

fn parse(args: &[&str]) -> Result<Cli, String> {
    parse_args(args.iter().map(|a| (*a).to_owned()).collect())
}

#[test]
fn the_old_command_lines_still_parse() {
    assert_eq!(
        parse(&["--local", "http://x", "requeue", "a", "b"]).unwrap(),
        Cli {
            source: Source::Local("http://x".into()),
            json: false,
            command: Command::Requeue(vec!["a".into(), "b".into()]),
        }
    );
    assert_eq!(
        parse(&["usage", "alice"]).unwrap().command,
        Command::Usage(vec!["alice".into()])
    );
    assert!(parse(&["requeue"]).is_err());
    assert!(parse(&[]).is_err());
}

#[test]
fn the_new_commands_take_their_options_anywhere_after_the_stack() {
    let cli = parse(&[
        "jobs", "--status", "queued", "--owner", "o", "--json", "--local", "http://x",
    ])
    .unwrap();
    assert_eq!(cli.source, Source::Local("http://x".into()));
    assert!(cli.json);
    assert_eq!(
        cli.command,
        Command::Jobs {
            status: Some(JobStatus::Queued),
            owner: Some("o".into()),
            limit: 20
        }
    );
    assert_eq!(
        parse(&["--stack", "prod", "dlq", "fast", "--limit", "5"]).unwrap(),
        Cli {
            source: Source::CloudFormation("prod".into()),
            json: false,
            command: Command::Dlq {
                queue: Some("fast".into()),
                limit: 5
            },
        }
    );
    assert_eq!(
        parse(&["--stack-outputs", "-", "queues"]).unwrap().command,
        Command::Queues { sample: 20 }
    );
    assert_eq!(parse(&["--help"]).unwrap().command, Command::Help);
}

#[test]
fn bad_command_lines_are_refused() {
    for bad in [
        &["queues", "--limit", "3"][..],
        &["jobs", "--status", "DONE"],
        &["jobs", "--limit", "0"],
        &["dlq", "a", "b"],
        &["--local", "x", "--stack", "y", "queues"],
        &["queues", "--frobnicate"],
        &["frobnicate"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_help_lists_every_command() {
    for command in [
        "queues",
        "dlq [QUEUE]",
        "jobs",
        "usage OWNER",
        "requeue JOB_ID",
        "--json",
        "visible again",
    ] {
        assert!(HELP.contains(command), "{command}");
    }
}
