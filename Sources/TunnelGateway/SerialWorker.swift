// A named thread that runs submitted work one item at a time, in order.
import SixgateSystem

final class SerialWorker: @unchecked Sendable {
    private let condition = SystemCondition()
    private var items: [() -> Void] = []
    private var busy = false
    private var started = false
    private let name: String

    init(name: String) { self.name = name }

    /// Runs `work` after everything submitted before it (the thread starts at the first item).
    func submit(_ work: @escaping () -> Void) {
        condition.lock()
        items.append(work)
        if !started {
            started = true
            SystemThread.start(name: name) { [weak self] in self?.loop() }
        }
        condition.signal()
        condition.unlock()
    }

    /// Waits until everything submitted so far has run.
    func drain() {
        condition.lock()
        while !items.isEmpty || busy { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while items.isEmpty { condition.wait() }
            let work = items.removeFirst()
            busy = true
            condition.unlock()
            work()
            condition.lock()
            busy = false
            condition.broadcast()
            condition.unlock()
        }
    }
}
