//! The loss curve draws whatever the history holds: infinite, NaN and huge losses are left out
//! of the axis (an infinite one once made `plotters` loop forever), and the file is written.

use dae::files::plot::write_loss_curve;
use dae::train::EpochStats;

#[test]
fn the_loss_curve_survives_losses_that_are_not_finite() {
    let dir = tempfile::tempdir().unwrap();
    let epoch = |epoch, train_loss, val_loss| EpochStats { epoch, train_loss, val_loss, seconds: 1.0 };
    let histories = [
        vec![epoch(1, 0.3, f64::INFINITY)],
        vec![epoch(1, f64::NAN, f64::NAN), epoch(2, f64::NEG_INFINITY, f64::INFINITY)],
        vec![epoch(1, 0.3, 1e30), epoch(2, 0.2, 0.25)],
        vec![epoch(1, 0.2, 0.2)],
    ];
    for (i, history) in histories.iter().enumerate() {
        let path = dir.path().join(format!("loss{i}.svg"));
        write_loss_curve(&path, history, "BCE").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let finite =
            history.iter().flat_map(|e| [e.train_loss, e.val_loss]).filter(|v| v.is_finite()).count();
        assert_eq!(svg.matches("<circle").count(), finite, "history {i}: a point per finite loss");
    }
}
